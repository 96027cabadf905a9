/* The transaction trace is crash-safe and complete (docs/bridge.md,
 * "Traces"; docs/protocol.md, "Trace file"):
 *   --mode kill:     a bridge SIGKILLed in the middle of a 1 MiB copy leaves a
 *                    trace with no partial record that holds every DMA read
 *                    the host had served;
 *   --mode follow:   a `tlpbtrace --follow` reader started before any traffic
 *                    ends with the same count as a plain read afterwards;
 *   --mode rejected: a TLP the bridge rejects (and a message in the wrong
 *                    direction) is in the trace with its reason, and
 *                    `tlpbtrace --rejected` selects it, its UR completion
 *                    is traced, a TLP that does not decode matches no
 *                    --kind or --address filter, and a --follow reader of
 *                    a trace cut back ends with an error. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"

#define COPY_BYTES (1024u * 1024u)
/* The DMA read after which the bridge is killed: well inside the copy
 * (2048 reads of MRRS 512 bytes), with many records written before. */
#define KILL_AT_READ 300u

static struct dmacopy_fixture fx;
static bool killed;
static uint64_t reads_at_kill;

static void kill_hook(struct dmacopy_fixture *f)
{
    if (killed || f->dma_read_requests < KILL_AT_READ)
        return;
    /* Every DMA read served so far came to the host as an MRd the bridge
     * traced before it sent it. */
    reads_at_kill = f->dma_read_requests;
    it_signal(it.bridge, SIGKILL);
    killed = true;
}

static void case_kill(const char *trace)
{
    fx_reset_engine(&fx, 16);
    uint8_t *src = fx.ram + SRC_OFF;
    for (uint32_t i = 0; i < COPY_BYTES; i++)
        src[i] = (uint8_t)(i * 7u + 3u);
    fx_post(&fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, COPY_BYTES, DESC_FLAG_IRQ);
    fx.dma_read_hook = kill_hook;
    fx_doorbell(&fx);
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (!killed && it_now_ms() < deadline) {
        int rc = tlpb_host_wait(fx.host, 1000);
        if (rc < 0 && rc != -EINTR)
            break;
    }
    fx.dma_read_hook = NULL;
    REQUIRE(killed, "the copy made %llu DMA reads, fewer than %u",
            (unsigned long long)fx.dma_read_requests, KILL_AT_READ);
    int status = it_wait_exit(it.bridge);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "bridge status 0x%x", status);

    /* The file ends with a whole record: a plain read has no complaint. */
    const char *all_args[] = {trace, NULL};
    const char *mrd_args[] = {trace, "--kind", "MRd", NULL};
    long all = it_trace_count(all_args);
    long mrd = it_trace_count(mrd_args);
    printf("  killed after %llu DMA reads: %ld records, %ld MRd\n",
           (unsigned long long)reads_at_kill, all, mrd);
    CHECK(mrd >= (long)reads_at_kill, "the trace holds %ld MRd, the host served %llu DMA reads",
          mrd, (unsigned long long)reads_at_kill);
}

/* Whether pid catches SIGTERM yet (its handler is installed). */
static bool catches_sigterm(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool caught = false;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "SigCgt:", 7) == 0)
            caught = (strtoull(line + 7, NULL, 16) >> (SIGTERM - 1)) & 1u;
    fclose(f);
    return caught;
}

static void case_follow(const char *trace)
{
    const char *out_path = it_path("follow.out");
    const char *argv[] = {it_paths.tracetool, "--follow", "--count", trace, NULL};
    pid_t follower = it_spawn(argv, out_path, it_path("follow.err"), -1);
    REQUIRE(follower > 0, "cannot start tlpbtrace --follow");
    /* Traffic only once the follower runs (and can be told to stop). */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    int early = 0;
    bool exited = false;
    while (!catches_sigterm(follower) && it_now_ms() < deadline) {
        if (waitpid(follower, &early, WNOHANG) == follower) {
            exited = true;
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    if (exited || !catches_sigterm(follower)) {
        if (!exited) {
            kill(follower, SIGKILL);
            it_reap(follower, NULL);
        }
        FILE *f = fopen(it_path("follow.err"), "r");
        char line[256] = "";
        if (f) {
            if (!fgets(line, sizeof(line), f))
                line[0] = '\0';
            fclose(f);
        }
        REQUIRE(false, "tlpbtrace --follow did not start following (%s, status 0x%x): %s",
                exited ? "exited" : "killed", early, line);
    }

    fx_open(&fx, "dmacopy0", false);
    fx_enumerate(&fx);
    fx_init_device(&fx);
    fx_copy(&fx, SRC_OFF, DST_OFF, 256u * 1024u, "256 KiB copy while followed");
    fx_close(&fx);
    it_signal(it.bridge, SIGTERM);
    int status = it_wait_exit(it.bridge);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bridge status 0x%x", status);

    /* The trace is complete now; the follower reads what is left and stops. */
    kill(follower, SIGTERM);
    bool reap_killed = false;
    int fstatus = it_reap(follower, &reap_killed);
    CHECK(!reap_killed && WIFEXITED(fstatus) && WEXITSTATUS(fstatus) == 0,
          "tlpbtrace --follow status 0x%x", fstatus);
    FILE *f = fopen(out_path, "r");
    long followed = -1;
    if (f) {
        if (fscanf(f, "%ld", &followed) != 1)
            followed = -1;
        fclose(f);
    }
    const char *plain_args[] = {trace, NULL};
    long plain = it_trace_count(plain_args);
    printf("  follower counted %ld records, a plain read %ld\n", followed, plain);
    CHECK(plain > 100, "only %ld records for a copy", plain);
    CHECK(followed == plain, "the follower counted %ld records, the file holds %ld", followed,
          plain);
}

static void case_rejected(const char *trace)
{
    struct raw r;
    raw_host(&r, "dmacopy0");
    /* Length/byte-enable mismatch: 1 DW with a last_be. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 5, .length_dw = 1, .first_be = 0xF,
                          .last_be = 0xF, .address = DMACOPY_BAR0_ADDR, .bar_hint = 0};
    raw_send_tlp(&r, &rd);
    /* The bridge traces a rejected TLP before it answers it. */
    expect_ur(&r, 5, "MRd with last_be on 1 DW");

    /* A message in the wrong direction: an Interrupt from a host. */
    Tlpb__Envelope env;
    Tlpb__Interrupt irq;
    tlpb_interrupt_envelope(&env, &irq, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0);
    unsigned errors = r.errors_seen;
    raw_send_env(&r, &env);
    bool eof = false;
    Tlpb__Envelope *reply = raw_next(&r, &eof);
    CHECK(reply && r.errors_seen == errors + 1, "no Error for an Interrupt from a host");
    if (reply)
        tlpb_envelope_free(reply);

    const char *args[] = {trace, "--rejected", NULL};
    char *out = NULL, *err = NULL;
    int rc = it_trace_tool(args, &out, &err);
    printf("  tlpbtrace --rejected:\n%s", out ? out : "");
    CHECK(rc == 0, "tlpbtrace --rejected: exit %d: %s", rc, err ? err : "");
    CHECK(out && strstr(out, "MRd") && strstr(out, "tag 5") &&
              strstr(out, "last_be must be 0 for a 1-DW request") && strstr(out, "dmacopy0"),
          "the rejected MRd with its reason is not in the trace: '%s'", out ? out : "");
    CHECK(out && strstr(out, "IRQ MSI-X vector 0") &&
              strstr(out, "Interrupt from a host is not accepted"),
          "the Interrupt from a host is not in the trace as rejected: '%s'", out ? out : "");
    free(out);
    free(err);
    const char *rejected[] = {trace, "--rejected", NULL};
    CHECK(it_trace_count(rejected) == 2, "not exactly two rejected records");
    /* The MRd's UR completion, which the bridge makes itself, is traced as
     * any completion to the host: the only completion in this trace. */
    const char *cpl[] = {trace, "--kind", "Cpl", NULL};
    long cpls = it_trace_count(cpl);
    CHECK(cpls == 1, "%ld Cpl records, expected the one UR completion", cpls);

    /* A TLP that does not decode (tag 0x1ff) ends the connection; it is
     * traced as rejected, but matches no --kind or --address filter. */
    Tlpb__Tlp bad_pb;
    struct tlpb_tlp bad = {.kind = TLPB_TLP_MRD, .tag = 6, .length_dw = 1, .first_be = 0xF,
                           .address = DMACOPY_BAR0_ADDR};
    tlpb_tlp_to_pb(&bad_pb, &bad);
    bad_pb.tag = 0x1ff;
    Tlpb__Envelope bad_env = TLPB__ENVELOPE__INIT;
    bad_env.body_case = TLPB__ENVELOPE__BODY_TLP;
    bad_env.tlp = &bad_pb;
    raw_send_env(&r, &bad_env);
    eof = false;
    for (Tlpb__Envelope *m; (m = raw_next(&r, &eof)) != NULL;)
        tlpb_envelope_free(m);
    CHECK(eof, "the connection stays open after a TLP with tag 0x1ff");
    raw_close(&r);
    CHECK(it_trace_count(rejected) == 3, "the TLP with tag 0x1ff is not traced as rejected");
    const char *mrd_args[] = {trace, "--kind", "MRd", NULL};
    out = NULL;
    err = NULL;
    rc = it_trace_tool(mrd_args, &out, &err);
    CHECK(rc == 0 && out && strstr(out, "tag 5") && !strstr(out, "malformed"),
          "tlpbtrace --kind MRd: exit %d, the MRd tag 5 and no malformed TLP expected: '%s'", rc,
          out ? out : "");
    free(out);
    free(err);
    const char *addr_args[] = {trace, "--address", "0x1000-0xffffffffffff", NULL};
    long in_range = it_trace_count(addr_args);
    CHECK(in_range == 1, "%ld records in --address 0x1000-0xffffffffffff, expected the MRd tag 5",
          in_range);
}

/* A file that stops growing in the middle of a record: --follow waits for
 * the rest, then (with --follow-timeout-ms) reports it as a plain read does. */
static void case_follow_partial(void)
{
    static const char partial[] = "TLPBTRC1\x10\x00\x00\x00\x08";
    const char *path = it_path("partial.trace");
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(partial, 1, sizeof(partial) - 1, f) == sizeof(partial) - 1,
            "cannot write %s", path);
    fclose(f);
    const char *plain[] = {path, NULL};
    const char *followed[] = {path, "--follow", "--follow-timeout-ms", "50", NULL};
    const char *const *runs[] = {plain, followed};
    for (unsigned i = 0; i < 2; i++) {
        char *out = NULL, *err = NULL;
        int rc = it_trace_tool(runs[i], &out, &err);
        CHECK(rc == 1 && err && strstr(err, "truncated record after 0 records"),
              "%s read of a partial record: exit %d, '%s'", i ? "following" : "plain", rc,
              err ? err : "");
        free(out);
        free(err);
    }
}

/* The file position of pid in the file at path (its open descriptor of
 * that inode), or -1 when it has none open. */
static long file_offset_of(pid_t pid, const char *path)
{
    struct stat want;
    if (stat(path, &want) != 0)
        return -1;
    char dir_path[64];
    snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(dir_path);
    if (!dir)
        return -1;
    long pos = -1;
    for (struct dirent *e; pos < 0 && (e = readdir(dir)) != NULL;) {
        char fd_path[320], info_path[320], line[128];
        struct stat st;
        snprintf(fd_path, sizeof(fd_path), "/proc/%d/fd/%s", (int)pid, e->d_name);
        if (e->d_name[0] == '.' || stat(fd_path, &st) != 0 || st.st_dev != want.st_dev ||
            st.st_ino != want.st_ino)
            continue;
        snprintf(info_path, sizeof(info_path), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        FILE *f = fopen(info_path, "r");
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "pos: %ld", &pos) == 1)
                break;
        if (f)
            fclose(f);
    }
    closedir(dir);
    return pos;
}

/* A trace cut back under a follower (truncated, or rewritten in place) is
 * reported and ends it with status 1, not waited on for ever. */
static void case_follow_cut(void)
{
    const char *path = it_path("cut.trace");
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite("TLPBTRC1", 1, 8, f) == 8, "cannot write %s", path);
    fclose(f);
    const char *argv[] = {it_paths.tracetool, "--follow", "--count", path, NULL};
    const char *err_path = it_path("cut.err");
    pid_t follower = it_spawn(argv, it_path("cut.out"), err_path, -1);
    REQUIRE(follower > 0, "cannot start tlpbtrace --follow");
    /* Cut the file only once the follower has read its 8 bytes. */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (file_offset_of(follower, path) != 8 && it_now_ms() < deadline) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(file_offset_of(follower, path) == 8, "the follower did not read the file header");
    CHECK(truncate(path, 0) == 0, "truncate %s: %s", path, strerror(errno));
    bool reap_killed = false;
    int status = it_reap(follower, &reap_killed);
    char err[256] = "";
    f = fopen(err_path, "r");
    if (f) {
        if (!fgets(err, sizeof(err), f))
            err[0] = '\0';
        fclose(f);
    }
    CHECK(!reap_killed && WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
              strstr(err, "trace cut back to 0 bytes"),
          "follower of a cut trace: %s, status 0x%x, '%s'", reap_killed ? "killed" : "exited",
          status, err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_trace_safe");
    REQUIRE(it_paths.model && it_paths.tracetool && it_paths.mode,
            "--model, --tlpbtrace and --mode are required");
    const char *mode = it_paths.mode;
    const char *trace = it_path("bridge.trace");
    char dev[1200];
    snprintf(dev, sizeof(dev), "dmacopy0:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", dev, "--trace", trace, NULL};
    it_start_bridge(args);

    if (strcmp(mode, "kill") == 0) {
        fx_open(&fx, "dmacopy0", false);
        fx_enumerate(&fx);
        fx_init_device(&fx);
        IT_RUN("SIGKILL in the middle of a copy leaves whole records", case_kill(trace));
        fx_close(&fx);
    } else if (strcmp(mode, "follow") == 0) {
        IT_RUN("tlpbtrace --follow sees every record", case_follow(trace));
    } else if (strcmp(mode, "rejected") == 0) {
        IT_RUN("a rejected TLP is traced with its reason", case_rejected(trace));
        IT_RUN("--follow-timeout-ms ends a read stopped mid-record", case_follow_partial());
        IT_RUN("--follow ends on a trace cut back", case_follow_cut());
    } else {
        REQUIRE(false, "unknown --mode %s", mode);
    }
    return it_finish();
}
