/*
 * ctl.h - client side of hareplicated's control socket (protocol: the
 * comment at the top of src/daemon/control.c).  Used by the start, status,
 * failover and stop commands.
 */
#ifndef HR_CLI_CTL_H
#define HR_CLI_CTL_H

#include <stdio.h>

struct hr_sbuf;

/* Exit status when the daemon cannot be reached (sysexits EX_UNAVAILABLE). */
#define HR_CTL_EXIT_UNREACHABLE 69

/* The control socket path: --control, else $HAREPLICATE_CONTROL, else the default. */
const char *hr_ctl_path(const char *opt);

/*
 * Send one request (kv.h pairs without `v=`; it is added) and copy the
 * reply's body to out.  Returns the exit status for the command: 0 (`ok`),
 * 1 (`error: ...`, printed to stderr as "hareplicate CMD: ..."), or
 * HR_CTL_EXIT_UNREACHABLE ("cannot reach hareplicated at PATH: ...", or
 * the daemon is busy or not answering).
 */
int hr_ctl_request(const char *path, const char *cmd, struct hr_sbuf *req, FILE *out);

struct hr_cmd;

/*
 * The body of a command that takes `[--control PATH] VM` and sends one
 * request naming the VM (stop, failover): parses argv, prints --help from
 * cmd, returns the exit status.
 */
int hr_ctl_vm_command(const struct hr_cmd *cmd, int argc, char **argv);

#endif
