/*
 * paths.h - the defaults hareplicated and the hareplicate command agree on:
 * where the control socket is, the replication port, the state directory
 * and the configuration file.  Nothing else: the command line includes it
 * without the daemon's internals.
 */
#ifndef HR_COMMON_PATHS_H
#define HR_COMMON_PATHS_H

#define HR_DEFAULT_CONTROL   "/run/hareplicate/control.sock"
#define HR_DEFAULT_PORT	     "7788"
#define HR_DEFAULT_STATE_DIR "/var/lib/hareplicate"
/* HR_SYSCONFDIR is configure's sysconfdir (Makefile.am) */
#define HR_DEFAULT_CONFIG HR_SYSCONFDIR "/hareplicate/hareplicated.conf"

#endif
