/*
 * tsshd-spawner: tsshd's command helper in C. It speaks the protocol of the Perl helper in
 * spawn-helper.ts (read that file's header first), and tsshd prefers it when it was built
 * (scripts/build-spawner.mjs, at `npm install` and `npm run build`, when a C compiler is there).
 *
 * Why a C program as well as the Perl one: a command started by the Perl helper costs that helper
 * 0.4-0.7 ms of CPU (perl's fork of itself, then copy-on-write faults in both processes as perl's
 * reference counts touch its pages), and the command 0.3-0.5 ms more than from a shell (its exec
 * tears down its copy of perl's memory). This process is a few hundred KiB: 0.08-0.16 ms per
 * command, and its commands cost what they cost from a shell. docs/performance.md, "The command
 * helper in C", has the measurements. Perl stays as the helper of a machine without a compiler.
 *
 * It starts each command with vfork(): the child shares this process's memory until it executes,
 * so everything it needs (argv, environment, credentials) is prepared before, and between the
 * vfork and the exec it only makes system calls.
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

/* Write all of `text` to `fd`, giving up quietly if its reader is gone. Only write(2): the child
 * of vfork uses it too. */
static void write_text(int fd, const char *text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(fd, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= (size_t)n;
  }
}

/* A line to tsshd, on fd 1. */
static void reply(const char *text) { write_text(STDOUT_FILENO, text); }

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

/* Everything the command's process needs, prepared before the fork: the child of vfork() shares
 * our memory until it executes, so it allocates nothing and changes no variable of ours. */
struct launch {
  const char *file;
  char **argv;
  char **envp;
  const char *cwd;
  int pipe_size;     /* F_SETPIPE_SZ for its stdout; 0: leave it */
  int switch_user;   /* 1: take uid, gid and groups; -1: the request's credentials were malformed */
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t group_count;
  int in, out, err;
};

/* In a command's child, before the exec: the message goes to the command's stderr, status 127. */
static __attribute__((noreturn)) void fail(const char *what, const char *detail) {
  write_text(STDERR_FILENO, "tsshd: ");
  write_text(STDERR_FILENO, what);
  if (detail) {
    write_text(STDERR_FILENO, ": ");
    write_text(STDERR_FILENO, detail);
  }
  write_text(STDERR_FILENO, "\n");
  _exit(127);
}

/* Take the user's groups, gid and uid, and check that they hold, as the chroot trampoline does. */
static void switch_user(const struct launch *launch) {
  if (setgroups(launch->group_count, launch->groups) != 0) fail("could not set the groups", strerror(errno));
  if (setgid(launch->gid) != 0) fail("setgid", strerror(errno));
  if (setuid(launch->uid) != 0) fail("setuid", strerror(errno));
  if (getuid() != launch->uid || geteuid() != launch->uid || getgid() != launch->gid || getegid() != launch->gid) fail("could not drop privileges", NULL);
  if (launch->uid != 0 && setuid(0) == 0) fail("could regain root", NULL);
  /* The groups held (egid and supplementary) must be exactly those wanted (gid and the list). */
  gid_t have[NGROUPS_MAX + 1];
  int held = getgroups(NGROUPS_MAX, have);
  if (held < 0) fail("could not read the groups", strerror(errno));
  have[held++] = getegid();
  for (int i = 0; i < held; i++) {
    int wanted = have[i] == launch->gid;
    for (size_t j = 0; j < launch->group_count && !wanted; j++) wanted = have[i] == launch->groups[j];
    if (!wanted) fail("could not set the groups", NULL);
  }
  for (size_t j = 0; j <= launch->group_count; j++) {
    gid_t want = j == launch->group_count ? launch->gid : launch->groups[j];
    int found = 0;
    for (int i = 0; i < held && !found; i++) found = have[i] == want;
    if (!found) fail("could not set the groups", NULL);
  }
}

/* execvp with the command's own environment: a `file` without a slash is looked for in its PATH
 * (default /usr/bin:/bin), as perl's exec does after the Perl helper sets %ENV. */
static __attribute__((noreturn)) void exec_command(const struct launch *launch) {
  if (strchr(launch->file, '/')) {
    execve(launch->file, launch->argv, launch->envp);
    fail(launch->file, strerror(errno));
  }
  const char *path = "/usr/bin:/bin";
  for (char **entry = launch->envp; *entry; entry++)
    if (strncmp(*entry, "PATH=", 5) == 0) path = *entry + 5;
  size_t file_length = strlen(launch->file);
  int error = ENOENT;
  for (const char *dir = path;; dir++) {
    const char *end = strchrnul(dir, ':');
    size_t dir_length = (size_t)(end - dir);
    char candidate[PATH_MAX];
    if (dir_length + 1 + file_length < sizeof candidate) {
      memcpy(candidate, dir, dir_length);
      /* An empty entry is the current folder, as for execvp. */
      if (dir_length == 0) candidate[dir_length++] = '.';
      candidate[dir_length] = '/';
      memcpy(candidate + dir_length + 1, launch->file, file_length + 1);
      execve(candidate, launch->argv, launch->envp);
      if (errno == EACCES) error = EACCES;
      else if (errno != ENOENT && errno != ENOTDIR) error = errno;
    }
    if (*end == '\0') break;
    dir = end;
  }
  fail(launch->file, strerror(error));
}

/* The command's process, after the fork: never returns. */
static __attribute__((noreturn)) void child(const struct launch *launch) {
  signal(SIGPIPE, SIG_DFL);
  if (dup2(launch->in, 0) < 0 || dup2(launch->out, 1) < 0 || dup2(launch->err, 2) < 0) _exit(127);
  if (launch->in > 2) close(launch->in);
  if (launch->out > 2) close(launch->out);
  if (launch->err > 2) close(launch->err);
  /* Blocking, as a command expects of its standard descriptors. */
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (launch->pipe_size > 0) fcntl(1, F_SETPIPE_SZ, launch->pipe_size);
  if (launch->switch_user < 0) fail("malformed credentials", NULL);
  if (launch->switch_user) switch_user(launch);
  if (chdir(launch->cwd) != 0 && chdir("/") != 0) fail("chdir", strerror(errno));
  exec_command(launch);
}

/* vfork: no copy of our page tables and no copy-on-write faults on either side; we wait,
 * suspended, only until the child has executed (or failed). A function of its own, so that no
 * variable of the caller lives across the vfork. */
static __attribute__((noinline)) pid_t spawn_child(const struct launch *launch) {
  pid_t pid = vfork();
  if (pid == 0) child(launch);
  return pid;
}

/* The user's credentials from the request's fields into `launch` (groups: comma-separated; none:
 * the gid alone). 0, or -1 when they are malformed or memory ran out. */
static int parse_credentials(struct launch *launch, const char *uid_text, const char *gid_text, const char *groups_text) {
  unsigned long long uid, gid, group;
  if (parse_number(uid_text, UINT_MAX - 1, &uid) || parse_number(gid_text, UINT_MAX - 1, &gid)) return -1;
  launch->uid = (uid_t)uid;
  launch->gid = (gid_t)gid;
  launch->groups = calloc(strlen(groups_text) / 2 + 2, sizeof *launch->groups);
  if (!launch->groups) return -1;
  char word[32];
  for (const char *at = groups_text;;) {
    const char *end = strchrnul(at, ',');
    size_t length = (size_t)(end - at);
    if (length >= sizeof word) return -1;
    memcpy(word, at, length);
    word[length] = '\0';
    if (length > 0) {
      if (parse_number(word, UINT_MAX - 1, &group)) return -1;
      launch->groups[launch->group_count++] = (gid_t)group;
    }
    if (*end == '\0') break;
    at = end + 1;
  }
  if (launch->group_count == 0) launch->groups[launch->group_count++] = launch->gid;
  return 0;
}

/* `array` with room for one more element of `size` bytes past `count` (doubling; exits when
 * memory runs out: tsshd then starts another helper). */
static void *room_for_one(void *array, size_t count, size_t *capacity, size_t size) {
  if (count < *capacity) return array;
  size_t grown_capacity = *capacity ? *capacity * 2 : 8;
  void *grown = realloc(array, grown_capacity * size);
  if (!grown) _exit(4);
  *capacity = grown_capacity;
  return grown;
}

static void add_command(struct command command) {
  commands = room_for_one(commands, command_count, &command_capacity, sizeof *commands);
  commands[command_count++] = command;
}

static void add_waiting(unsigned long long id, int signal_number) {
  waiting = room_for_one(waiting, waiting_count, &waiting_capacity, sizeof *waiting);
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
  struct launch launch = {
      .file = field[FIELD_FILE],
      .cwd = field[FIELD_CWD],
      .in = s,
      .out = out,
      .err = err,
  };
  unsigned long long pipe_size;
  if (parse_number(field[FIELD_PIPESIZE], INT_MAX, &pipe_size) == 0) launch.pipe_size = (int)pipe_size;
  if (field[FIELD_UID][0] != '\0') launch.switch_user = parse_credentials(&launch, field[FIELD_UID], field[FIELD_GID], field[FIELD_GROUPS]) == 0 ? 1 : -1;
  /* argv[0], the arguments, NULL; the environment entries, NULL. */
  size_t nenv = count - FIXED_FIELDS - (size_t)nargs;
  launch.argv = calloc((size_t)nargs + 2, sizeof *launch.argv);
  launch.envp = calloc(nenv + 1, sizeof *launch.envp);
  pid_t pid = -1;
  if (launch.argv && launch.envp) {
    launch.argv[0] = field[FIELD_ARGV0];
    for (size_t i = 0; i < nargs; i++) launch.argv[i + 1] = field[FIXED_FIELDS + i];
    for (size_t i = 0; i < nenv; i++) launch.envp[i] = field[FIXED_FIELDS + nargs + i];
    pid = spawn_child(&launch);
  } else {
    errno = ENOMEM;
  }
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
  free(launch.groups);
  free(launch.argv);
  free(launch.envp);
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
