/* cmd.h - the command table: one cmd-<verb>.c per command exports its entry. */
#ifndef HR_CMD_H
#define HR_CMD_H

struct hr_cmd {
	const char *name;
	const char *usage; /* one line: arguments */
	const char *help;  /* what it does, shown by --help */
	int (*run)(int argc, char **argv);
};

extern const struct hr_cmd hr_cmd_run;
extern const struct hr_cmd hr_cmd_restore;
extern const struct hr_cmd hr_cmd_start;
extern const struct hr_cmd hr_cmd_status;
extern const struct hr_cmd hr_cmd_failover;
extern const struct hr_cmd hr_cmd_promote;
extern const struct hr_cmd hr_cmd_demote;
extern const struct hr_cmd hr_cmd_migrate;
extern const struct hr_cmd hr_cmd_stop;
extern const struct hr_cmd hr_cmd_drill;
extern const struct hr_cmd hr_cmd_witness;
extern const struct hr_cmd hr_cmd_cert;

/* Print the usage of one command to stderr; returns 2 (the exit status for bad usage). */
int hr_cmd_usage(const struct hr_cmd *cmd);
/* --help: the usage and help on stdout; returns 0 (exit status). */
int hr_cmd_help(const struct hr_cmd *cmd);

#endif
