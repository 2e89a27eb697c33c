/*
 * tsshd-spawner: tsshd's command helper in C. It speaks the protocol of the Perl helper in
 * spawn-helper.ts (read that file's header first), and tsshd prefers it when it was built
 * (scripts/build-spawner.mjs, at `npm install` and `npm run build`, when a C compiler is there).
 *
 * Why a C program as well as the Perl one: a command started by the Perl helper costs that helper
 * 0.4-0.7 ms of CPU (perl's fork of itself, then copy-on-write faults in both processes as perl's
 * reference counts touch its pages), and the command 0.3-0.5 ms more than from a shell (its exec
 * tears down its copy of perl's memory). This process is a few hundred KiB: 0.1-0.25 ms per
 * command, and its commands cost what they cost from a shell. docs/performance.md, "The command
 * helper in C", has the measurements. Perl stays as the helper of a machine without a compiler.
 *
 * argv[1]: the Unix socket to listen on. stdout: `R` once listening, then `X id status` and
 * `F id message` lines; stdin: `K id signal` lines. Every request is one connection (see
 * spawn-helper.ts): a 10-byte length `%09d\n`, then NUL-separated fields; what follows on the
 * connection is the command's stdin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The fixed fields before the arguments: id, cwd, uid, gid, groups, stdout FIFO, stderr FIFO,
 * pipe size, file, argv0, argument count. */
enum { FIELD_ID, FIELD_CWD, FIELD_UID, FIELD_GID, FIELD_GROUPS, FIELD_OUT, FIELD_ERR, FIELD_PIPESIZE, FIELD_FILE, FIELD_ARGV0, FIELD_NARGS, FIXED_FIELDS };

/* The largest request tsshd sends (spawn-helper.ts refuses longer ones). */
#define MAX_REQUEST 999999999UL
/* A control buffer that grows past this without a whole `K` line is garbage: exit. */
#define MAX_CONTROL 1024

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

struct command {
  pid_t pid;
  unsigned long long id;
  int pidfd; /* -1: no pidfd (a kernel before 5.3): waitpid every 50 ms */
  int out, err; /* our copies of its stdout and stderr, closed after the status is sent */
};

struct waiting_signal {
  unsigned long long id;
  int signal;
};

static struct command *commands;
static size_t command_count, command_capacity;
static struct waiting_signal *waiting;
static size_t waiting_count, waiting_capacity;
/* The highest id seen in a request: a signal for a higher one waits for its request. */
static unsigned long long highest;
static int seen_any;

/* Write all of `text` to fd 1 (tsshd's pipe); gives up quietly if tsshd is gone. */
static void reply(const char *text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(STDOUT_FILENO, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= (size_t)n;
  }
}

static void replyf(const char *format, unsigned long long id, const char *detail) {
  char line[512];
  snprintf(line, sizeof line, format, id, detail);
  reply(line);
}

/* Read exactly `want` bytes; 0 on success, -1 on EOF or error. */
static int read_exactly(int fd, char *buffer, size_t want) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(fd, buffer + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

/* A decimal number that is all of `text` (no sign, no space); 0 on success. */
static int parse_number(const char *text, unsigned long long max, unsigned long long *value) {
  if (*text < '0' || *text > '9') return -1;
  unsigned long long result = 0;
  for (; *text; text++) {
    if (*text < '0' || *text > '9') return -1;
    unsigned digit = (unsigned)(*text - '0');
    if (result > (max - digit) / 10) return -1;
    result = result * 10 + digit;
  }
  *value = result;
  return 0;
}

/* In a command's child, before the exec: the message goes to the command's stderr. */
static void fail(const char *what, const char *detail) {
  dprintf(STDERR_FILENO, "tsshd: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  _exit(127);
}

static void failf(const char *what, unsigned long long value) {
  char text[64];
  snprintf(text, sizeof text, "%s %llu", what, value);
  fail(text, strerror(errno));
}

/* Take the user's groups, gid and uid, and check that they hold, as the chroot trampoline does. */
static void switch_user(const char *uid_text, const char *gid_text, char *groups_text) {
  unsigned long long uid, gid, group;
  if (parse_number(uid_text, UINT_MAX - 1, &uid) || parse_number(gid_text, UINT_MAX - 1, &gid)) fail("bad credentials", NULL);
  size_t count = 0;
  gid_t *groups = calloc(strlen(groups_text) / 2 + 2, sizeof *groups);
  if (!groups) fail("out of memory", NULL);
  for (char *next = groups_text, *word; (word = strsep(&next, ",")) != NULL;) {
    if (*word == '\0') continue;
    if (parse_number(word, UINT_MAX - 1, &group)) fail("bad group list", NULL);
    groups[count++] = (gid_t)group;
  }
  if (count == 0) groups[count++] = (gid_t)gid;
  if (setgroups(count, groups) != 0) fail("could not set the groups", strerror(errno));
  if (setgid((gid_t)gid) != 0) failf("setgid", gid);
  if (setuid((uid_t)uid) != 0) failf("setuid", uid);
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) fail("could not drop privileges", NULL);
  if (uid != 0 && setuid(0) == 0) fail("could regain root", NULL);
  /* The groups held (egid and supplementary) must be exactly those wanted (gid and the list). */
  gid_t have[NGROUPS_MAX + 1];
  int held = getgroups(NGROUPS_MAX, have);
  if (held < 0) fail("could not read the groups", strerror(errno));
  have[held++] = getegid();
  for (int i = 0; i < held; i++) {
    int wanted = have[i] == (gid_t)gid;
    for (size_t j = 0; j < count && !wanted; j++) wanted = have[i] == groups[j];
    if (!wanted) fail("could not set the groups", NULL);
  }
  for (size_t j = 0; j <= count; j++) {
    gid_t want = j == count ? (gid_t)gid : groups[j];
    int found = 0;
    for (int i = 0; i < held && !found; i++) found = have[i] == want;
    if (!found) fail("could not set the groups", NULL);
  }
  free(groups);
}

/* The command's process, after the fork: never returns. */
static void child(char **field, size_t nargs, char **env, size_t nenv, int in, int out, int err) {
  signal(SIGPIPE, SIG_DFL);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  if (in > 2) close(in);
  if (out > 2) close(out);
  if (err > 2) close(err);
  /* Blocking, as a command expects of its standard descriptors. */
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  unsigned long long pipe_size;
  if (parse_number(field[FIELD_PIPESIZE], INT_MAX, &pipe_size) == 0 && pipe_size > 0) fcntl(1, F_SETPIPE_SZ, (int)pipe_size);
  if (field[FIELD_UID][0] != '\0') switch_user(field[FIELD_UID], field[FIELD_GID], field[FIELD_GROUPS]);
  if (chdir(field[FIELD_CWD]) != 0 && chdir("/") != 0) fail("chdir", strerror(errno));
  char **argv = calloc(nargs + 2, sizeof *argv);
  char **envp = calloc(nenv + 1, sizeof *envp);
  if (!argv || !envp) fail("out of memory", NULL);
  argv[0] = field[FIELD_ARGV0];
  for (size_t i = 0; i < nargs; i++) argv[i + 1] = field[FIXED_FIELDS + i];
  for (size_t i = 0; i < nenv; i++) envp[i] = env[i];
  /* The command's environment, also for execvp's search of PATH when `file` has no slash. */
  environ = envp;
  execvp(field[FIELD_FILE], argv);
  fail(field[FIELD_FILE], strerror(errno));
}

static void add_command(struct command command) {
  if (command_count == command_capacity) {
    size_t capacity = command_capacity ? command_capacity * 2 : 16;
    struct command *grown = realloc(commands, capacity * sizeof *grown);
    if (!grown) _exit(4);
    commands = grown;
    command_capacity = capacity;
  }
  commands[command_count++] = command;
}

static void add_waiting(unsigned long long id, int signal_number) {
  if (waiting_count == waiting_capacity) {
    size_t capacity = waiting_capacity ? waiting_capacity * 2 : 8;
    struct waiting_signal *grown = realloc(waiting, capacity * sizeof *grown);
    if (!grown) _exit(4);
    waiting = grown;
    waiting_capacity = capacity;
  }
  waiting[waiting_count++] = (struct waiting_signal){ id, signal_number };
}

/* Deliver (to `pid`) or drop (pid 0) the signals that waited for request `id`. */
static void take_waiting(unsigned long long id, pid_t pid) {
  size_t kept = 0;
  for (size_t i = 0; i < waiting_count; i++) {
    if (waiting[i].id != id) waiting[kept++] = waiting[i];
    else if (pid > 0) kill(pid, waiting[i].signal);
  }
  waiting_count = kept;
}

/* One request: read it from connection `s`, open the FIFOs, fork. Replies F when it cannot start it. */
static void start(int s) {
  char head[11];
  if (read_exactly(s, head, 10) != 0 || head[9] != '\n') return;
  head[9] = '\0';
  unsigned long long length;
  if (parse_number(head, MAX_REQUEST, &length) != 0 || strlen(head) != 9) return;
  char *body = malloc(length + 1);
  if (!body) return;
  if (read_exactly(s, body, length) != 0) {
    free(body);
    return;
  }
  body[length] = '\0';
  /* Split at every NUL, keeping empty fields (the body has no NUL at its end). */
  size_t count = 1;
  for (size_t i = 0; i < length; i++) count += body[i] == '\0';
  char **field = calloc(count, sizeof *field);
  if (!field) {
    free(body);
    return;
  }
  field[0] = body;
  for (size_t i = 0, f = 1; i < length; i++)
    if (body[i] == '\0') field[f++] = body + i + 1;
  unsigned long long id, nargs;
  if (count < FIXED_FIELDS || parse_number(field[FIELD_ID], ULLONG_MAX, &id) != 0 || parse_number(field[FIELD_NARGS], count, &nargs) != 0 ||
      nargs > count - FIXED_FIELDS) {
    free(field);
    free(body);
    return;
  }
  if (!seen_any || id > highest) highest = id;
  seen_any = 1;
  const char *out_path = field[FIELD_OUT], *err_path = field[FIELD_ERR];
  /* The FIFOs, opened without waiting (tsshd's ends may be gone already: the session ended);
   * close-on-exec, so that the copies kept here never reach a command started later. */
  int out = open(out_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  int err = out >= 0 ? open(err_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1;
  if (out < 0 || err < 0) {
    const char *why = strerror(errno);
    if (out >= 0) close(out);
    unlink(out_path);
    unlink(err_path);
    take_waiting(id, 0);
    replyf("F %llu %s\n", id, why);
    free(field);
    free(body);
    return;
  }
  if (field[FIELD_UID][0] != '\0') {
    unsigned long long uid, gid;
    if (parse_number(field[FIELD_UID], UINT_MAX - 1, &uid) == 0 && parse_number(field[FIELD_GID], UINT_MAX - 1, &gid) == 0) {
      if (fchown(out, (uid_t)uid, (gid_t)gid) != 0 || fchown(err, (uid_t)uid, (gid_t)gid) != 0) {
        /* as chown in the Perl helper: the command still runs, and may fail to reopen them by name */
      }
    }
  }
  unlink(out_path);
  unlink(err_path);
  /* stdin is for reading only, as a pipe's end would be (tsshd never reads what is written to it). */
  shutdown(s, SHUT_WR);
  pid_t pid = fork();
  if (pid == 0) child(field, (size_t)nargs, field + FIXED_FIELDS + nargs, count - FIXED_FIELDS - (size_t)nargs, s, out, err);
  if (pid < 0) {
    const char *why = strerror(errno);
    close(out);
    close(err);
    take_waiting(id, 0);
    replyf("F %llu %s\n", id, why);
  } else {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    add_command((struct command){ pid, id, pidfd < 0 ? -1 : pidfd, out, err });
    take_waiting(id, pid);
  }
  free(field);
  free(body);
}

/* Send the status of every command that has ended, then close our copies of its outputs: tsshd
 * learns of the end in one wake-up. `readable[i]`: command i's pidfd polled readable. */
static void reap(const short *revents) {
  size_t kept = 0;
  for (size_t i = 0; i < command_count; i++) {
    struct command command = commands[i];
    int status;
    int ended = (command.pidfd < 0 || revents[i] != 0) && waitpid(command.pid, &status, WNOHANG) == command.pid;
    if (!ended) {
      commands[kept++] = command;
      continue;
    }
    char line[64];
    snprintf(line, sizeof line, "X %llu %d\n", command.id, status);
    reply(line);
    if (command.pidfd >= 0) close(command.pidfd);
    close(command.out);
    close(command.err);
  }
  command_count = kept;
}

/* `K id signal` lines at the start of `control`; returns how many bytes they took. A line that
 * is not one stays, and the buffer fills up behind it (see MAX_CONTROL). */
static size_t signals(const char *control, size_t length) {
  size_t used = 0;
  for (;;) {
    const char *line = control + used;
    const char *end = memchr(line, '\n', length - used);
    char text[64];
    /* The shortest line is `K 1 1`. */
    if (!end || end - line < 5 || (size_t)(end - line) >= sizeof text) return used;
    memcpy(text, line, (size_t)(end - line));
    text[end - line] = '\0';
    char *space = strchr(text + 2, ' ');
    if (text[0] != 'K' || text[1] != ' ' || !space) return used;
    *space = '\0';
    unsigned long long id, signal_number;
    if (parse_number(text + 2, ULLONG_MAX, &id) != 0 || parse_number(space + 1, 64, &signal_number) != 0) return used;
    used = (size_t)(end - control) + 1;
    size_t i = 0;
    while (i < command_count && commands[i].id != id) i++;
    if (i < command_count) kill(commands[i].pid, (int)signal_number);
    else if (!seen_any || id > highest) add_waiting(id, (int)signal_number);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tsshd-spawner SOCKET (started by tsshd)\n");
    return 2;
  }
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  if (strlen(argv[1]) >= sizeof address.sun_path) {
    fprintf(stderr, "tsshd-spawner: socket path too long: %s\n", argv[1]);
    return 1;
  }
  strcpy(address.sun_path, argv[1]);
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listener < 0) {
    perror("tsshd-spawner: socket");
    return 1;
  }
  unlink(argv[1]);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
    fprintf(stderr, "tsshd-spawner: listen %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  reply("R\n");
  char control[MAX_CONTROL + 4096];
  size_t control_length = 0;
  struct pollfd *polled = NULL;
  short *revents = NULL;
  size_t polled_capacity = 0;
  for (;;) {
    size_t needed = command_count + 2;
    if (needed > polled_capacity) {
      polled_capacity = needed * 2;
      polled = realloc(polled, polled_capacity * sizeof *polled);
      revents = realloc(revents, polled_capacity * sizeof *revents);
      if (!polled || !revents) _exit(4);
    }
    polled[0] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
    polled[1] = (struct pollfd){ .fd = listener, .events = POLLIN };
    int without_pidfd = 0;
    for (size_t i = 0; i < command_count; i++) {
      polled[i + 2] = (struct pollfd){ .fd = commands[i].pidfd, .events = POLLIN };
      without_pidfd |= commands[i].pidfd < 0;
    }
    int n = poll(polled, command_count + 2, without_pidfd ? 50 : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) _exit(3);
    for (size_t i = 0; i < command_count; i++) revents[i] = polled[i + 2].revents;
    reap(revents);
    /* Every connection waiting, before the signals: one may be for them. */
    for (;;) {
      int s = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
      if (s < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        break;
      }
      start(s);
      close(s);
    }
    if (!(polled[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t got = read(STDIN_FILENO, control + control_length, sizeof control - control_length);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) _exit(0);
    control_length += (size_t)got;
    size_t used = signals(control, control_length);
    memmove(control, control + used, control_length - used);
    control_length -= used;
    if (control_length > MAX_CONTROL) _exit(2);
  }
}
