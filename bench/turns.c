/* Makes benchmark rows take turns: runs each command (with /bin/sh -c) in a process group
 * of its own, and lets exactly one group run at a time, in slots of SLOT seconds, round
 * robin, by SIGCONT and SIGSTOP, until every command has exited. Whatever else the machine
 * does then falls on all rows alike: on a shared virtual machine a program run twice in a
 * row moves by 20% from one second to the next, more than the differences the targets are
 * about. Any program takes part unchanged (wrk, Python, the shell loop of curl commands).
 *
 *   turns SLOT LOG CMD...
 *
 * Each command starts stopped and runs only in its slots, its start-up included. LOG gets
 * one line per slot, "INDEX FROM TO" (CLOCK_MONOTONIC seconds; INDEX counts commands from
 * 1): a row that prints the end of its measurement (monotonic) and its length can then
 * count the time it really ran (bench/run.lua). Exits 0 when every command exited 0.
 *
 * A stopped row still has its requests in flight: the server answers them in the next
 * row's slot and they are read at once in the row's own next slot. Every row of a group
 * has as many in flight as the others, so this evens out. MIT licence, see LICENSE. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define MAX_ROWS 32

typedef struct row {
  pid_t pid;                     /* also the process group */
  int running, status;
} row;

static void sleep_until(double at)
{
  struct timespec ts;
  ts.tv_sec = (time_t)at;
  ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec > 999999999L)
    ts.tv_nsec = 999999999L;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

/* Starts command in a new process group, stopped before it runs anything. */
static pid_t spawn_stopped(const char *command)
{
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  /* no row outlives a killed conductor */
    raise(SIGSTOP);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
  }
  if (pid > 0) {
    int status;
    setpgid(pid, pid);                 /* either side may get here first */
    if (waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status))
      return -1;
  }
  return pid;
}

/* Whether the row's shell exited; notes its status. */
static int exited(row *r)
{
  int status;
  if (r->running && waitpid(r->pid, &status, WNOHANG) == r->pid) {
    r->running = 0;
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return !r->running;
}

int main(int argc, char **argv)
{
  row rows[MAX_ROWS];
  double slot;
  FILE *log;
  int n = argc - 3, left, i, k, failed = 0;
  if (argc < 4 || n > MAX_ROWS || (slot = atof(argv[1])) <= 0) {
    fprintf(stderr, "usage: turns SLOT LOG CMD... (at most %d commands)\n", MAX_ROWS);
    return 2;
  }
  log = fopen(argv[2], "w");
  if (log == NULL) {
    perror(argv[2]);
    return 2;
  }
  for (i = 0; i < n; i++) {
    rows[i].pid = spawn_stopped(argv[3 + i]);
    rows[i].running = rows[i].pid > 0;
    rows[i].status = rows[i].running ? 0 : 127;
  }
  left = n;
  for (k = 0; left > 0; k = (k + 1) % n) {
    double from, to;
    if (exited(&rows[k]))
      continue;
    from = bench_now();
    kill(-rows[k].pid, SIGCONT);
    sleep_until(from + slot);
    kill(-rows[k].pid, SIGSTOP);
    to = bench_now();
    fprintf(log, "%d %.6f %.6f\n", k + 1, from, to);
    left = 0;
    for (i = 0; i < n; i++)
      left += !exited(&rows[i]);
  }
  fclose(log);
  for (i = 0; i < n; i++) {
    if (rows[i].status != 0) {
      fprintf(stderr, "turns: command %d exited with %d\n", i + 1, rows[i].status);
      failed = 1;
    }
  }
  return failed;
}
