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
//	update           the manifests, the node's list of what it lacks, one
//	                 blob stream, then what deploy does: one request
//	deploy           make, start, check and switch to a new instance from
//	                 a manifest an update kept
//	activate         make an instance, prev or release live at a location
//	deactivate       remove routes (globs), stop what no route serves
//	query            apps, routes, instances, releases, disabled apps
//	clean            remove unused instances, contents and leftovers
//	disable, enable  the disabled page for every location of an app
//	logs             errors.log and the journal, -f follows
//	diff             compare an application directory with an instance
//	restore          re-point slots, start live instances, reload if needed
//
// and the operations on an app's services' data (protocol/services.go):
//
//	backup            every service of the app into a backup kept on the
//	                  node (backups: backup-APP-DATE, or remote:NAME)
//	backup-fetch      a kept backup: its description, then a tar stream
//	backup-delete     remove a kept backup
//	services-restore  replace the app's data with a kept backup or one
//	                  streamed after the request (checked first)
//	clear             empty every service, then update_fetch again
//	run-upload        files for a run, into the app's TEMP
//	run               not a message stream: `toppcloud node run REQUEST`
//	                  runs a script of the live instance in a transient
//	                  unit with the instance's user, environment and
//	                  sandbox, on this process's standard streams (a
//	                  terminal with run -i); its status is the script's
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
//	workers       app.ini's workers of the new instance started; each waits
//	              until the old instance's copy has stopped (jobs.go)
//	switch        the route's slot symlink replaced (slots.go); the router
//	              (the Caddy behind the front server) is reloaded only
//	              when its config changes (a new location, kind or
//	              php_root), the front server only for a new port
//	jobs          the old instance's workers stopped, the app's crons run
//	              as the new instance from now on (jobs.go)
//	drain         the old instance finishes what it accepted (counted on
//	              its socket, bounded), is stopped and kept as prev
//	release       a line in /var/lib/toppcloud/apps/APP/releases.jsonl
//	certificate   for an https location, the front server asked for the
//	              host's certificate; a refusal is a warning with the
//	              CA's reason
//
// A failure before the switch removes the new instance and leaves the
// live one serving; the error carries the application's output. The agent
// ignores SIGPIPE, so a client that goes away does not cut a deploy in
// half: it completes or rolls back on its own.
//
// activate runs lock, start (the instance on disk, unless it runs
// already, and its workers), switch, jobs, drain, release and certificate
// the same way: those from the switch on, and the rollback before the
// switch, are one transition (transition.go) for both. The instances
// themselves (names, records, units, start, drain, stop) are package
// instance's; the node's apt and systemd, package system's.
//
// # setup-node
//
// setup runs package setup's steps under the "setup" lock.
//
// Where all of this lives on the node is package layout.
package agent
