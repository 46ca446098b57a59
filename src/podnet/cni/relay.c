/* The exec'd CNI plugin as a small C program: relay the invocation to this
 * node's agent and print its answer. An interpreter's start-up alone costs most
 * of what a Go plugin takes for a whole ADD; this costs a fork and exec.
 *
 * The wire format is entry.py's:
 *   request:  "<plugin>\0<len(env)>\0<len(stdin)>\n" env stdin, env being the
 *             CNI_* variables as NUL-separated KEY=VALUE
 *   response: "<exit code>\n" and what the plugin prints on stdout
 * The plugin is this file's name (podnet install copies it once per plugin).
 * When no agent listens, or it dies mid-call, the Python entry installed beside
 * it (.podnet/<plugin>) does the work, with stdin handed on. If that cannot run
 * either, the answer is the spec's error JSON, code 11 (try again later).
 *
 * libc only: cc -O2 -o relay relay.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

struct buffer { char *data; size_t len, cap; };

static void append(struct buffer *b, const void *data, size_t len) {
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 4096;
        if (!(b->data = realloc(b->data, b->cap))) { perror("podnet relay"); exit(1); }
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static int read_all(int fd, struct buffer *b) {
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        append(b, chunk, (size_t)n);
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n, len -= (size_t)n;
    }
    return 0;
}

/* The agent's answer in `answer`, or -1 when there is none to be had. */
static int relay(const char *path, const struct buffer *request, struct buffer *answer) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) return -1;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || write_all(fd, request->data, request->len) < 0
            || shutdown(fd, SHUT_WR) < 0 || read_all(fd, answer) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Runs the Python entry beside this binary, stdin handed on through a memfd. */
static void fall_back(const char *plugin, const struct buffer *in) {
    char self[PATH_MAX], entry[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return;
    self[n] = '\0';
    snprintf(entry, sizeof entry, "%s/.podnet/%s", dirname(self), plugin);
    int fd = memfd_create("cni-stdin", 0);
    if (fd < 0 || write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) return;
    char *argv[] = {entry, NULL};
    execve(entry, argv, environ);
}

/* The config's cniVersion, for the error's own (the spec asks for it). */
static void version_of(const struct buffer *in, char *out, size_t size) {
    snprintf(out, size, "1.0.0");
    char *text = strndup(in->data ? in->data : "", in->len);
    char *key = text ? strstr(text, "\"cniVersion\"") : NULL;
    char *open = key ? strchr(key + 12, '"') : NULL;
    char *close = open ? strchr(open + 1, '"') : NULL;
    if (close && (size_t)(close - open - 1) < size && close - open - 1 > 0)
        snprintf(out, size, "%.*s", (int)(close - open - 1), open + 1);
    free(text);
}

int main(int argc, char **argv) {
    (void)argc;
    const char *plugin = basename(argv[0]);
    struct buffer env = {0}, in = {0}, request = {0}, answer = {0};
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "CNI_", 4) != 0) continue;
        if (env.len) append(&env, "", 1);
        append(&env, *e, strlen(*e));
    }
    const char *command = getenv("CNI_COMMAND");
    if (!(command && strcmp(command, "VERSION") == 0 && isatty(0)) && read_all(0, &in) < 0) {
        perror("podnet relay: stdin");
        return 1;
    }
    char head[512];
    int len = snprintf(head, sizeof head, "%s%c%zu%c%zu\n", plugin, 0, env.len, 0, in.len);
    append(&request, head, (size_t)len);
    if (env.len) append(&request, env.data, env.len);
    if (in.len) append(&request, in.data, in.len);

    char path[128];
    const char *override = getenv("PODNET_AGENT_SOCKET");
    struct stat ns;
    if (override) {
        snprintf(path, sizeof path, "%s", override);
    } else if (stat("/proc/self/ns/net", &ns) == 0) {
        snprintf(path, sizeof path, "/run/podnet/agents/net-%lu.sock", (unsigned long)ns.st_ino);
    } else {
        path[0] = '\0';
    }
    char *newline = NULL;
    if (path[0] && relay(path, &request, &answer) == 0 && answer.len)
        newline = memchr(answer.data, '\n', answer.len);
    if (newline && newline > answer.data) {
        char *end;
        *newline = '\0';
        long code = strtol(answer.data, &end, 10);
        if (*end == '\0') {
            char *body = newline + 1;
            if (write_all(1, body, answer.len - (size_t)(body - answer.data)) < 0) return 1;
            return (int)code;
        }
    }
    fall_back(plugin, &in);  /* returns only if the entry could not run */
    char version[64], error[512];
    version_of(&in, version, sizeof version);
    len = snprintf(error, sizeof error,
                   "{\"cniVersion\": \"%s\", \"code\": 11, \"msg\": \"podnet agent unreachable\", "
                   "\"details\": \"no agent answered at %s and the Python entry could not run: %s\"}\n",
                   version, path, strerror(errno));
    write_all(1, error, (size_t)len);
    return 1;
}
