// A list paged on the server: `page(offset)` loads LIMIT rows from `path` with the filters of
// `params()`, keeping the total the API counted (X-Total-Count) and the error it gave.
import { ref } from "vue";
import { query, request } from "./api.js";

export const LIMIT = 50;

export function usePaged(path, params, pick = (data) => data) {
  const rows = ref([]);
  const total = ref(0);
  const offset = ref(0);
  const error = ref(null);
  async function page(at = 0) {
    error.value = null;
    try {
      const out = await request(path + query({ ...params(), limit: LIMIT, offset: at }));
      rows.value = pick(out.data);
      total.value = out.total;
      offset.value = at;
    } catch (e) {
      error.value = e.message;
    }
  }
  return { rows, total, offset, error, page };
}

// runs `fn`, puts its error's message in `error` and answers null instead of throwing
export async function attempt(error, fn) {
  try {
    return await fn();
  } catch (e) {
    error.value = e.message;
    return null;
  }
}
