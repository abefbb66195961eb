/*
 * drill-world.c - the drill's outside world (namespace OUT): the listening
 * sockets of the console collector (drill-console.c), the replication tap
 * and the back relay (drill-relay.c), and the two threads that run them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ha/drill/drill.h"

static int listen_on(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int drill_world_listen(struct drill_world *w, const char *ip, int con_port, int tap_port,
		       int back_port)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int rc;

	if (self < 0)
		return -errno;
	if ((rc = drill_enter_netns(w->netns_out)) < 0) {
		close(self);
		return rc;
	}
	w->con_lfd = listen_on(ip, con_port);
	w->tap_lfd = listen_on(ip, tap_port);
	w->back_lfd = listen_on(ip, back_port);
	if (setns(self, 0) < 0)
		rc = -errno;
	close(self);
	if (w->con_lfd < 0)
		return w->con_lfd;
	if (w->tap_lfd < 0)
		return w->tap_lfd;
	if (w->back_lfd < 0)
		return w->back_lfd;
	return rc;
}

int drill_world_start(struct drill_world *w, pthread_t *threads)
{
	int rc = pthread_create(&threads[0], NULL, drill_collector, w);
	if (rc)
		return -rc;
	rc = pthread_create(&threads[1], NULL, drill_tap_thread, w);
	if (rc) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_mutex_unlock(&w->lock);
		pthread_join(threads[0], NULL);
		return -rc;
	}
	return 0;
}

void drill_world_stop(struct drill_world *w, pthread_t *threads)
{
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	pthread_join(threads[0], NULL);
	pthread_join(threads[1], NULL);
	if (w->con_lfd >= 0)
		close(w->con_lfd);
	if (w->tap_lfd >= 0)
		close(w->tap_lfd);
	if (w->back_lfd >= 0)
		close(w->back_lfd);
	w->con_lfd = w->tap_lfd = w->back_lfd = -1;
}
