/* tlpbctl: talk to a running tlpbridged over its control interface. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlpb/wire.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tlpbctl [-s SOCKET] [--token-file FILE] COMMAND [ARGS...]\n"
                 "commands:\n"
                 "  status                      devices, backends, counters (JSON)\n"
                 "  time                        coupled simulated time, one line per device\n"
                 "  switch DEVICE BACKEND       fallback | hlsim | external\n"
                 "  reload DEVICE [MODEL.so]    reload the device's hlsim model\n"
                 "  trace on FILE | trace off\n"
                 "SOCKET (a path, unix:PATH or tcp:HOST:PORT) defaults to $TLPBRIDGE_SOCKET.\n"
                 "Over TCP the bridge wants its token: --token-file FILE (first line), or\n"
                 "$TLPB_TOKEN, or a file named by $TLPB_TOKEN_FILE.\n");
}

int main(int argc, char **argv)
{
    const char *socket_path = getenv("TLPBRIDGE_SOCKET");
    const char *token_file = NULL;
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"token-file", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
        if (ch == 's')
            socket_path = optarg;
        else if (ch == 'k')
            token_file = optarg;
        else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc || !socket_path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    char token[TLPB_TOKEN_MAX_BYTES + 1] = "";
    if (token_file && tlpb_token_read_file(token_file, token, sizeof(token), err, sizeof(err)) != 0) {
        fprintf(stderr, "tlpbctl: --token-file: %s\n", err);
        return 2;
    }
    int fd = tlpb_connect(socket_path, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "tlpbctl: %s\n", err);
        return 1;
    }
    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_CONTROL, NULL, "tlpbctl");
    hello.token = token; /* empty: tlpb_handshake looks in the environment */
    Tlpb__Envelope *reply = tlpb_handshake(fd, &rd, &hello, 5000, err, sizeof(err));
    if (!reply) {
        fprintf(stderr, "tlpbctl: %s\n", err);
        tlpb_reader_free(&rd);
        close(fd);
        return 1;
    }
    tlpb_envelope_free(reply);

    Tlpb__ControlRequest req = TLPB__CONTROL_REQUEST__INIT;
    req.command = argv[optind];
    req.n_args = (size_t)(argc - optind - 1);
    req.args = argv + optind + 1;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &req;
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_DEFAULT_MAX_FRAME_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    int status = 1;
    if (tlpb_obuf_append(&ob, &env, true) != 0 || tlpb_obuf_write_all(&ob, fd) != 0) {
        fprintf(stderr, "tlpbctl: sending the command failed\n");
        tlpb_obuf_free(&ob);
        goto out;
    }
    tlpb_obuf_free(&ob);
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_read_frame(&rd, fd, 30000, &frame, &len, &reason);
        if (rc <= 0) {
            fprintf(stderr, "tlpbctl: no reply: %s\n", reason);
            goto out;
        }
        Tlpb__Envelope *msg = tlpb_envelope_decode(frame, len, &reason);
        if (!msg) {
            fprintf(stderr, "tlpbctl: bad reply: %s\n", reason);
            goto out;
        }
        if (msg->body_case != TLPB__ENVELOPE__BODY_CONTROL_REPLY) {
            tlpb_envelope_free(msg);
            continue;
        }
        status = msg->control_reply->ok ? 0 : 1;
        fprintf(status ? stderr : stdout, "%s%s\n", status ? "tlpbctl: " : "",
                msg->control_reply->text);
        tlpb_envelope_free(msg);
        break;
    }
out:
    tlpb_reader_free(&rd);
    close(fd);
    return status;
}
