/*
 * sitewatch_journal: a Mosquitto 2.0 plugin that makes a QoS 1 acknowledgement mean "kept".
 *
 * Mosquitto persists by writing a snapshot of its whole state every autosave_interval; what it
 * acknowledged (PUBACK) after the last snapshot and had not yet delivered is gone when it is
 * killed. This plugin appends every QoS 1/2 message a client publishes to a journal on the
 * MOSQ_EVT_MESSAGE event, which Mosquitto raises after the ACL check and before it stores the
 * message or acknowledges it. At start, before any client connects, it publishes again the
 * journalled messages younger than the snapshot (minus a margin) on RECOVERED_PREFIX + topic:
 * the bridge subscribes there and treats them as redeliveries, so the copies it had already
 * forwarded are dropped as replays and the lost ones arrive.
 *
 * A write is a write(2) to the page cache, as Kafka's own log is: it survives the process being
 * killed, not the machine losing power.
 *
 * Files: <journal_dir>/<start ms, 20 digits>.journal, a new one every segment_s seconds and at
 * every start; one is deleted once the segment after it is older than keep_s and than the
 * snapshot (so a Mosquitto that fails to save keeps its journal). A record, in host byte order:
 *   u32 n | u8 kind ('M' message, 'C' clean stop) | u8 qos | u16 topic_len | u64 at_ms |
 *   topic | payload | u32 n
 * where n counts the bytes from kind to the end of the payload. A record cut short by a crash
 * fails the trailer check and ends the segment; a failed write is cut off again (or the segment
 * is closed), so nothing is appended behind a partial record. Topics longer than MAX_TOPIC
 * (they could not be published again with the prefix) are refused.
 *
 * Options (plugin_opt_*): journal_dir (required), snapshot_file (required: mosquitto.db),
 * skip_username (the bridge: its own empty retained messages need no journal),
 * recover_margin_s (5), segment_s (60), keep_s (600).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define RECOVERED_PREFIX "sitewatch/recovered/"
#define HEAD_BYTES 12u /* kind, qos, topic_len, at_ms */
#define MAX_BODY (16u * 1024u * 1024u)
#define MAX_SEGMENTS 4096
/* a recovered message's topic is RECOVERED_PREFIX + its topic, and MQTT topics are at most
 * 65,535 bytes: a longer one is refused when it arrives */
#define MAX_TOPIC (65535u - (sizeof(RECOVERED_PREFIX) - 1u))

static mosquitto_plugin_id_t *plugin_id;
static char journal_dir[1024];
static char snapshot_file[1024];
static char skip_username[256];
static long long recover_margin_ms = 5000;
static long long segment_ms = 60000;
static long long keep_ms = 600000;
static int fd = -1;
static long long segment_started_ms;
static long long last_append_ms;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment file names in journal_dir, oldest first; *count set. Caller frees. */
static char **segments(int *count)
{
	DIR *dir = opendir(journal_dir);
	char **names = calloc(MAX_SEGMENTS, sizeof(char *));
	struct dirent *entry;
	size_t len;
	*count = 0;
	if(dir == NULL || names == NULL){
		if(dir) closedir(dir);
		free(names);
		return NULL;
	}
	while((entry = readdir(dir)) != NULL && *count < MAX_SEGMENTS){
		len = strlen(entry->d_name);
		if(len == 28 && strcmp(entry->d_name + 20, ".journal") == 0){
			names[(*count)++] = strdup(entry->d_name);
		}
	}
	closedir(dir);
	qsort(names, (size_t)*count, sizeof(char *), by_name);
	return names;
}

static void free_segments(char **names, int count)
{
	for(int i = 0; i < count; i++) free(names[i]);
	free(names);
}

static int full_write(int out, const void *data, size_t len)
{
	const char *p = data;
	while(len > 0){
		ssize_t n = write(out, p, len);
		if(n < 0){
			if(errno == EINTR) continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int append(char kind, uint8_t qos, const char *topic, const void *payload, uint32_t payloadlen)
{
	uint16_t topic_len = (uint16_t)strlen(topic);
	uint32_t n = HEAD_BYTES + topic_len + payloadlen;
	uint64_t at = (uint64_t)now_ms();
	size_t total = 4u + n + 4u;
	char stack_buf[4096];
	char *buf = total <= sizeof(stack_buf) ? stack_buf : malloc(total);
	char *p = buf;
	int rc;
	if(buf == NULL) return -1;
	memcpy(p, &n, 4); p += 4;
	*p++ = kind;
	*p++ = (char)qos;
	memcpy(p, &topic_len, 2); p += 2;
	memcpy(p, &at, 8); p += 8;
	memcpy(p, topic, topic_len); p += topic_len;
	if(payloadlen) memcpy(p, payload, payloadlen);
	p += payloadlen;
	memcpy(p, &n, 4);
	{
		off_t before = lseek(fd, 0, SEEK_END);
		rc = full_write(fd, buf, total); /* one write: a crash leaves a whole or a torn record */
		if(rc != 0 && (before < 0 || ftruncate(fd, before) != 0)){
			/* a partial record would hide every later one: never append behind it */
			close(fd);
			fd = -1;
		}
	}
	if(rc == 0) last_append_ms = (long long)at;
	if(buf != stack_buf) free(buf);
	return rc;
}

/* The snapshot's mtime in ms, or -1 without one. */
static long long snapshot_ms(void)
{
	struct stat st;
	if(stat(snapshot_file, &st) != 0) return -1;
	return (long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static void drop_old_segments(void)
{
	int count;
	char **names = segments(&count);
	char path[1100];
	long long horizon = now_ms() - keep_ms;
	long long saved = snapshot_ms();
	if(names == NULL) return;
	/* never what the last snapshot may lack, however old: Mosquitto may fail to save */
	if(saved < 0) horizon = 0;
	else if(saved - recover_margin_ms < horizon) horizon = saved - recover_margin_ms;
	for(int i = 0; i + 1 < count && atoll(names[i + 1]) < horizon; i++){
		snprintf(path, sizeof(path), "%s/%s", journal_dir, names[i]);
		unlink(path);
	}
	free_segments(names, count);
}

static int open_segment(void)
{
	char path[1100];
	if(fd >= 0) close(fd);
	segment_started_ms = now_ms();
	for(int tries = 0; tries < 1000; tries++, segment_started_ms++){ /* a fresh file, always */
		snprintf(path, sizeof(path), "%s/%020lld.journal", journal_dir, segment_started_ms);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
		if(fd >= 0 || errno != EEXIST) break;
	}
	if(fd < 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "sitewatch_journal: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	drop_old_segments();
	return 0;
}

/* One record of `in` into *body (reallocated as needed); 0 at the end or at a torn record. */
static int read_record(FILE *in, char **body, uint32_t *cap, uint32_t *n)
{
	uint32_t trailer;
	if(fread(n, 4, 1, in) != 1) return 0;
	if(*n < HEAD_BYTES || *n > MAX_BODY) return 0;
	if(*n > *cap){
		char *grown = realloc(*body, *n);
		if(grown == NULL) return 0;
		*body = grown;
		*cap = *n;
	}
	if(fread(*body, 1, *n, in) != *n) return 0;
	if(fread(&trailer, 4, 1, in) != 1 || trailer != *n) return 0;
	return 1;
}

/* Whether the newest segment ends with a clean-stop record (written after the final save). */
static int stopped_cleanly(const char *newest)
{
	char path[1100];
	char *body = NULL;
	uint32_t cap = 0, n = 0;
	char last = 0;
	FILE *in;
	snprintf(path, sizeof(path), "%s/%s", journal_dir, newest);
	in = fopen(path, "rb");
	if(in == NULL) return 0;
	while(read_record(in, &body, &cap, &n)) last = body[0];
	fclose(in);
	free(body);
	return last == 'C';
}

static void recover(void)
{
	long long cutoff = 0;
	int count, republished = 0;
	char **names = segments(&count);
	char path[1100];
	static char topic[sizeof(RECOVERED_PREFIX) + 65536];
	if(names == NULL || count == 0){
		if(names) free_segments(names, count);
		return;
	}
	if(stopped_cleanly(names[count - 1])){
		free_segments(names, count);
		return;
	}
	if(snapshot_ms() >= 0) cutoff = snapshot_ms() - recover_margin_ms;
	for(int i = 0; i < count; i++){
		char *body = NULL;
		uint32_t cap = 0, n = 0;
		FILE *in;
		/* a segment that ends before the cutoff holds nothing to recover */
		if(i + 1 < count && atoll(names[i + 1]) < cutoff) continue;
		snprintf(path, sizeof(path), "%s/%s", journal_dir, names[i]);
		in = fopen(path, "rb");
		if(in == NULL) continue;
		while(read_record(in, &body, &cap, &n)){
			uint16_t topic_len;
			uint64_t at;
			memcpy(&topic_len, body + 2, 2);
			memcpy(&at, body + 4, 8);
			if(body[0] != 'M' || (long long)at < cutoff) continue;
			if(HEAD_BYTES + (uint32_t)topic_len > n) break;
			if(topic_len > MAX_TOPIC) continue; /* written by an older build: cannot be sent */
			snprintf(topic, sizeof(topic), "%s%.*s", RECOVERED_PREFIX, (int)topic_len, body + HEAD_BYTES);
			if(mosquitto_broker_publish_copy(NULL, topic, (int)(n - HEAD_BYTES - topic_len),
					body + HEAD_BYTES + topic_len, body[1] ? body[1] : 1, false, NULL) == MOSQ_ERR_SUCCESS){
				republished++;
			}
		}
		fclose(in);
		free(body);
	}
	free_segments(names, count);
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			"sitewatch_journal: %d messages acknowledged since %lld ms before the last snapshot "
			"published again on " RECOVERED_PREFIX "#", republished, recover_margin_ms);
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	const char *username;
	(void)event;
	(void)userdata;
	if(ed->qos == 0) return MOSQ_ERR_SUCCESS; /* nothing was promised */
	if(strlen(ed->topic) > MAX_TOPIC || ed->payloadlen > MAX_BODY - HEAD_BYTES - MAX_TOPIC){
		return MOSQ_ERR_ACL_DENIED; /* could not be recovered */
	}
	username = mosquitto_client_username(ed->client);
	if(skip_username[0] && username && strcmp(username, skip_username) == 0) return MOSQ_ERR_SUCCESS;
	if(fd < 0 || now_ms() - segment_started_ms >= segment_ms){
		if(open_segment() != 0) return MOSQ_ERR_UNKNOWN;
	}
	if(append('M', ed->qos, ed->topic, ed->payload, ed->payloadlen) != 0){
		/* not kept, so not acknowledged: the client is disconnected and sends it again */
		mosquitto_log_printf(MOSQ_LOG_ERR, "sitewatch_journal: write failed: %s", strerror(errno));
		return MOSQ_ERR_UNKNOWN;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	plugin_id = identifier;
	for(int i = 0; i < option_count; i++){
		const char *key = options[i].key, *value = options[i].value;
		if(strcmp(key, "journal_dir") == 0) snprintf(journal_dir, sizeof(journal_dir), "%s", value);
		else if(strcmp(key, "snapshot_file") == 0) snprintf(snapshot_file, sizeof(snapshot_file), "%s", value);
		else if(strcmp(key, "skip_username") == 0) snprintf(skip_username, sizeof(skip_username), "%s", value);
		else if(strcmp(key, "recover_margin_s") == 0) recover_margin_ms = atoll(value) * 1000;
		else if(strcmp(key, "segment_s") == 0) segment_ms = atoll(value) * 1000;
		else if(strcmp(key, "keep_s") == 0) keep_ms = atoll(value) * 1000;
	}
	if(journal_dir[0] == 0 || snapshot_file[0] == 0 || segment_ms <= 0 || keep_ms < segment_ms){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				"sitewatch_journal: needs plugin_opt_journal_dir and plugin_opt_snapshot_file");
		return MOSQ_ERR_INVAL;
	}
	if(mkdir(journal_dir, 0700) != 0 && errno != EEXIST){
		mosquitto_log_printf(MOSQ_LOG_ERR, "sitewatch_journal: cannot create %s: %s", journal_dir, strerror(errno));
		return MOSQ_ERR_UNKNOWN;
	}
	recover();
	if(open_segment() != 0) return MOSQ_ERR_UNKNOWN;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
	if(fd >= 0){
		/* after Mosquitto's final save, if it happened: then nothing is left to recover */
		if(snapshot_ms() >= last_append_ms) append('C', 0, "", NULL, 0);
		close(fd);
		fd = -1;
	}
	return MOSQ_ERR_SUCCESS;
}
