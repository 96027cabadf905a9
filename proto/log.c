/* Log levels, escaping of peer text and per-call-site rate limiting. */
#include <stdio.h>
#include <string.h>

#include "tlpb/log.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *tlpb_log_level_name(int level)
{
    if (level < TLPB_LOG_ERROR || level > TLPB_LOG_DEBUG)
        return "?";
    return level_names[level];
}

int tlpb_log_level_from_name(const char *s)
{
    for (int i = TLPB_LOG_ERROR; i <= TLPB_LOG_DEBUG; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static bool plain(unsigned char ch)
{
    return ch >= 0x20 && ch < 0x7F && ch != '\\';
}

bool tlpb_log_needs_escape(const char *s)
{
    for (; *s; s++)
        if (!plain((unsigned char)*s) && *s != '\\')
            return true;
    return false;
}

const char *tlpb_log_escape(char *dst, size_t dst_size, const char *src, size_t max_chars)
{
    if (dst_size == 0)
        return dst;
    size_t out = 0;
    size_t i = 0;
    bool cut = false;
    for (; src && src[i]; i++) {
        if (i >= max_chars) {
            cut = true;
            break;
        }
        unsigned char ch = (unsigned char)src[i];
        char piece[5];
        size_t n;
        if (plain(ch)) {
            piece[0] = (char)ch;
            n = 1;
        } else if (ch == '\\') {
            piece[0] = piece[1] = '\\';
            n = 2;
        } else {
            snprintf(piece, sizeof(piece), "\\x%02x", ch);
            n = 4;
        }
        /* Keep room for "..." and the terminator. */
        if (out + n + 4 > dst_size) {
            cut = true;
            break;
        }
        memcpy(dst + out, piece, n);
        out += n;
    }
    if (cut && out + 4 <= dst_size) {
        memcpy(dst + out, "...", 3);
        out += 3;
    }
    dst[out < dst_size ? out : dst_size - 1] = '\0';
    return dst;
}

static struct tlpb_log_site *owing_head;

bool tlpb_log_site_admit(struct tlpb_log_site *site, uint64_t now_ns, int level,
                         const char *message)
{
    uint64_t interval_ns = (uint64_t)TLPB_LOG_INTERVAL_MS * 1000000u;
    if (site->in_window == 0 || now_ns - site->window_start_ns >= interval_ns) {
        if (site->suppressed)
            return true; /* the summary is owed first: tlpb_log_flush_summaries */
        site->window_start_ns = now_ns;
        site->in_window = 0;
    }
    if (site->in_window < (level >= TLPB_LOG_INFO ? TLPB_LOG_BURST_INFO : TLPB_LOG_BURST)) {
        site->in_window++;
        return true;
    }
    if (site->suppressed == 0 || level < site->suppressed_level)
        site->suppressed_level = level;
    site->suppressed++;
    if (message)
        snprintf(site->last, sizeof(site->last), "%s", message);
    if (!site->queued) {
        site->queued = true;
        site->next = owing_head;
        owing_head = site;
    }
    return false;
}

unsigned tlpb_log_flush_summaries(uint64_t now_ns, bool force, tlpb_log_emit_fn emit,
                                  void *opaque)
{
    uint64_t interval_ns = (uint64_t)TLPB_LOG_INTERVAL_MS * 1000000u;
    unsigned still_owing = 0;
    struct tlpb_log_site **pp = &owing_head;
    while (*pp) {
        struct tlpb_log_site *site = *pp;
        if (!force && now_ns - site->window_start_ns < interval_ns) {
            still_owing++;
            pp = &site->next;
            continue;
        }
        char line[320];
        snprintf(line, sizeof(line), "%s [and %llu more like it in %u s, not logged]", site->last,
                 (unsigned long long)site->suppressed, TLPB_LOG_INTERVAL_MS / 1000u);
        *pp = site->next;
        site->queued = false;
        site->next = NULL;
        site->suppressed = 0;
        /* A new interval starts with this summary. */
        site->window_start_ns = now_ns;
        site->in_window = 1;
        emit(site->suppressed_level, line, opaque);
    }
    return still_owing;
}

bool tlpb_log_summaries_owed(void)
{
    return owing_head != NULL;
}
