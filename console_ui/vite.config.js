import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// Served by the API under /console/; everything bundled, nothing from a CDN.
export default defineConfig({
  base: "/console/",
  plugins: [vue()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1500 },
});
