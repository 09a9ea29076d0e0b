// Package agent is the node side of toppcloud: `toppcloud node OP`, run by
// the client over SSH as root (or through sudo), reads one
// protocol.Request on stdin and answers with a protocol message stream on
// stdout: step events, log lines, one result.
//
// Operations (see Op for adding one):
//
//	version        bare protocol.VersionInfo JSON; reads nothing
//	install-agent  replace the binary with the one streamed after the request
//	info           protocol.InfoResult: version and node.json
//	setup          setup-node's steps (protocol.SetupArgs, SetupResult)
//
// and the application operations (protocol/apps.go has their types):
//
//	deploy-manifest  keep an upload's manifest, answer the missing contents
//	deploy-blobs     store the contents streamed after the request
//	deploy           make, start, check and switch to a new instance
//	activate         make an instance, prev or release live at a location
//	deactivate       remove routes (globs), stop what no route serves
//	query            apps, routes, instances, releases, disabled apps
//	clean            remove unused instances, contents and leftovers
//	disable, enable  the disabled page for every location of an app
//	logs             errors.log and the journal, -f follows
//	restore          re-point slots, start live instances, reload if needed
//
// All node work goes through a *host.Host (files under a root, commands
// through a Runner), so operations are unit-tested against a temporary
// root and a fake runner (host/hosttest).
//
// # update
//
// deploy runs named steps under the app's lock ("app-APP"; a second
// operation on the app waits, saying who holds it, up to its lock wait):
//
//	lock          take the app's lock
//	instance      APP.DATE_NNN assembled from the kept manifest (hard links
//	              to the blob store, read-only); app.ini checked again here
//	config        a --config upload replaces the app's config directory
//	packages      app.ini's Debian packages, installed when missing
//	services      the service hook (internal/service): CONFIG_* variables
//	start         units written, started beside the live instance, health
//	              check on its own address and on the router's socket
//	update_fetch  app.ini's update_fetch against the new instance, its
//	              output streamed to the client
//	switch        the route's slot symlink replaced (slots.go); Caddy is
//	              reloaded only when its config changes (a new location,
//	              kind or php_root)
//	drain         the old instance finishes what it accepted (counted on
//	              its socket, bounded), is stopped and kept as prev
//	release       a line in /var/lib/toppcloud/apps/APP/releases.jsonl
//
// A failure before the switch removes the new instance and leaves the
// live one serving; the error carries the application's output. The agent
// ignores SIGPIPE, so a client that goes away does not cut a deploy in
// half: it completes or rolls back on its own.
//
// activate runs lock, start (the instance on disk, unless it runs
// already), switch, drain and release the same way: the last three, and
// the rollback before the switch, are one transition (transition.go) for
// both. The instances themselves (names, records, units, start, drain,
// stop) are package instance's; the node's apt and systemd, package
// system's.
//
// # setup-node
//
// Each step reports start, then done (it changed the node) or skipped
// (nothing to do), with elapsed time; a failing step reports failed and
// the operation fails with the cause (an apt error carries apt's output
// tail). Steps compare before they write, so a second run changes nothing,
// and a run that failed half way is finished by the next one. In order:
//
//	check os      /etc/os-release: Debian 12+ or Ubuntu 22.04+, else refuse
//	wait for apt  until no process holds dpkg's or apt's locks (bounded)
//	packages      NodePackages via dpkg-query; apt-get update and install
//	              only what is missing; finish an interrupted dpkg first
//	agent         /usr/local/bin/toppcloud root:root 0755 (uploaded by the client)
//	users         group toppcloud-apps; user www-mgr with the client's keys
//	              added to its authorized_keys; /etc/sudoers.d/toppcloud
//	              (checked with visudo -c first) allowing exactly
//	              `/usr/local/bin/toppcloud node *` as root
//	directories   the layout below; /run/toppcloud through tmpfiles.d
//	node secret   /var/lib/toppcloud/secret, made once, never shown
//	firewall      nftables table inet toppcloud (only ours; policy drop on
//	              input; established, lo, ICMP, DHCP replies and tcp 22, 80,
//	              443 and the SSH port accepted), applied atomically with
//	              nft -f and at boot by toppcloud-firewall.service
//	sysctl        net.ipv4.tcp_migrate_req=1 now and in /etc/sysctl.d
//	app units     toppcloud-app@.service, the runtime assets; the
//	              distribution's php-fpm service stopped and disabled
//	caddy         drop-in: caddy run --config /var/lib/toppcloud/caddy.json;
//	              a new node's config is the empty route table rendered
//	              (not-found site, admin API on /run/toppcloud/caddy-admin.sock
//	              only), restarted when needed, loaded through the admin API
//	logs          logrotate for /var/log/toppcloud/apps/*/*.log and the
//	              setup log; journald persistent, at most 1G
//	node.json     /etc/toppcloud/node.json when something changed; one line
//	              per run appended to /var/log/toppcloud/setup.log
//
// Where all of this lives on the node is package layout.
package agent
