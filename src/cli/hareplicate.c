/*
 * hareplicate - the command line.  `hareplicate COMMAND --help` tells what a
 * command takes; `hareplicate --help` lists them.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "common/log.h"

static const struct hr_cmd *const cmds[] = {
    &hr_cmd_run,     &hr_cmd_restore, &hr_cmd_start, &hr_cmd_status,  &hr_cmd_failover,
    &hr_cmd_migrate, &hr_cmd_stop,    &hr_cmd_drill, &hr_cmd_witness, &hr_cmd_cert,
    &hr_cmd_promote, &hr_cmd_demote,  NULL,
};

int hr_cmd_usage(const struct hr_cmd *cmd)
{
	fprintf(stderr, "usage: hareplicate %s %s\n\n%s", cmd->name, cmd->usage, cmd->help);
	return 2;
}

int hr_cmd_help(const struct hr_cmd *cmd)
{
	printf("usage: hareplicate %s %s\n\n%s", cmd->name, cmd->usage, cmd->help);
	return 0;
}

static void usage_all(FILE *f)
{
	fprintf(f, "usage: hareplicate COMMAND [ARGS]\n\ncommands:\n");
	for (unsigned i = 0; cmds[i]; i++)
		fprintf(f, "  %-9s %s\n", cmds[i]->name, cmds[i]->usage);
	fprintf(f, "\n'hareplicate COMMAND --help' describes one command; "
		   "'hareplicate --version' prints the version.\n");
}

int main(int argc, char **argv)
{
	hr_log_init("hareplicate", 1, 0);
	/* a daemon that closes on us is reported, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage_all(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage_all(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("hareplicate (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return 0;
	}
	for (unsigned i = 0; cmds[i]; i++)
		if (!strcmp(argv[1], cmds[i]->name))
			return cmds[i]->run(argc - 1, argv + 1);
	fprintf(stderr, "hareplicate: unknown command '%s'\n", argv[1]);
	usage_all(stderr);
	return 2;
}
