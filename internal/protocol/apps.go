package protocol

import (
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// DeployArgs are OpDeploy's arguments.
type DeployArgs struct {
	App string `json:"app"`
	// Location is where the new instance goes live.
	Location string `json:"location"`
	// Digest names the application's manifest, kept by an update.
	Digest wire.Hash `json:"digest"`
	// ConfigDigest, if set, names a --config directory's manifest: it
	// replaces the app's uploaded configuration.
	ConfigDigest *wire.Hash `json:"config_digest,omitempty"`
	// Clear asks the services to clear the app's data (update --clear).
	Clear bool `json:"clear,omitempty"`
	// LockWait bounds waiting for another operation on the same app.
	LockWait Duration `json:"lock_wait,omitempty"`
	// HealthTimeout bounds the wait for the new instance to answer (0:
	// the agent's default).
	HealthTimeout Duration `json:"health_timeout,omitempty"`
	// SkipUnchanged lets the agent skip the update when the live instance
	// at Location has the same manifest and configuration and runs under
	// this agent version (DeployResult.Unchanged); false always makes a
	// new instance.
	SkipUnchanged bool `json:"skip_unchanged,omitempty"`
	// Jobs says which of the app's jobs this node runs; nil keeps what
	// the node was told last (at first: every cron, one copy of every
	// worker).
	Jobs *JobPlacement `json:"jobs,omitempty"`
	// ServiceEnv, set on a site's app node, are the CONFIG_* variables of
	// the app's services on the site's services node: the node runs none
	// of its own, installs only their client libraries and keeps these
	// for later activates. Passwords: never print them.
	ServiceEnv map[string]string `json:"service_env,omitempty"`
}

// JobPlacement is the share of an app's jobs (app.ini's cron.NAME and
// worker.NAME) one node runs. A node of its own runs every cron and one
// replica of every worker; on a site (several nodes) the client gives one
// node the crons and spreads each worker's worker.NAME.replicas over the
// nodes.
type JobPlacement struct {
	// Crons: this node runs the app's crons.
	Crons bool `json:"crons"`
	// Workers is how many replicas of each worker this node runs, by
	// name; a worker not named runs none here.
	Workers map[string]int `json:"workers,omitempty"`
}

// DeployResult is OpDeploy's result.
type DeployResult struct {
	// Instance is live at the location now.
	Instance string `json:"instance"`
	// Prev is the instance it replaced, kept for `activate LOCATION prev`;
	// "" on a first deploy.
	Prev string `json:"prev,omitempty"`
	// Release is the number of the release record.
	Release int `json:"release"`
	// Location is the normalized location.
	Location string `json:"location"`
	// Reloaded says the routing config changed (a new location or kind:
	// the router reloaded, which fails no request; the front server only
	// for a new port); false means the switch was a symlink replacement
	// only.
	Reloaded bool `json:"reloaded"`
	// Unchanged: nothing differed from the live instance and nothing was
	// done (SkipUnchanged).
	Unchanged bool `json:"unchanged,omitempty"`
	// Drained says how the old instance was stopped: "" when there was
	// none, else e.g. "3 requests finished".
	Drained string `json:"drained,omitempty"`
}

// UpdateArgs are OpUpdate's arguments.
type UpdateArgs struct {
	App      string `json:"app"`
	Location string `json:"location"`
	// Config says a --config directory's manifest follows the app's; it
	// replaces the app's uploaded configuration.
	Config bool `json:"config,omitempty"`
	// NeedConfig: the app requires a configuration (config.required,
	// without config.default) and this update uploads none; the agent
	// refuses before any upload unless one was uploaded before.
	NeedConfig bool `json:"need_config,omitempty"`
	// Clear, LockWait, HealthTimeout and SkipUnchanged are DeployArgs'.
	Clear         bool     `json:"clear,omitempty"`
	LockWait      Duration `json:"lock_wait,omitempty"`
	HealthTimeout Duration `json:"health_timeout,omitempty"`
	SkipUnchanged bool     `json:"skip_unchanged,omitempty"`
	// Jobs are DeployArgs'.
	Jobs *JobPlacement `json:"jobs,omitempty"`
	// Hold: a site's rolling update. Once the new instance is ready to
	// switch to, the agent replies UpdateHeld and reads a HoldDecision
	// line; only a commit switches.
	Hold bool `json:"hold,omitempty"`
	// SkipFetch: do not run update_fetch (a site runs it on one node).
	SkipFetch bool `json:"skip_fetch,omitempty"`
	// ServiceEnv are DeployArgs'.
	ServiceEnv map[string]string `json:"service_env,omitempty"`
}

// UpdateNeed is OpUpdate's reply: the contents the node lacks, as indexes
// into the manifests' entries (each content once, at its first entry),
// which is a few bytes each where hashes would be 66.
type UpdateNeed struct {
	App    []int `json:"app"`
	Config []int `json:"config,omitempty"`
	// Bytes is their total size.
	Bytes int64 `json:"bytes"`
}

// UpdateResult is OpUpdate's result: OpDeploy's, and what was received.
type UpdateResult struct {
	DeployResult
	// Blobs and BlobBytes are the contents received (BlobBytes before
	// compression).
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blob_bytes"`
}

// ActivateArgs are OpActivate's arguments.
type ActivateArgs struct {
	Location string `json:"location"`
	// Target is an instance name, "prev" or a release number.
	Target        string   `json:"target"`
	LockWait      Duration `json:"lock_wait,omitempty"`
	HealthTimeout Duration `json:"health_timeout,omitempty"`
	// Jobs is as in DeployArgs.
	Jobs *JobPlacement `json:"jobs,omitempty"`
}

// ActivateResult is OpActivate's result.
type ActivateResult struct {
	Location string `json:"location"`
	Instance string `json:"instance"`
	Prev     string `json:"prev,omitempty"`
	Release  int    `json:"release"`
	Reloaded bool   `json:"reloaded"`
	// Unchanged: the instance was live already.
	Unchanged bool `json:"unchanged,omitempty"`
}

// DeactivateArgs are OpDeactivate's arguments.
type DeactivateArgs struct {
	// Patterns select routes as router.ParsePattern reads them.
	Patterns []string `json:"patterns"`
	KeepPrev bool     `json:"keep_prev,omitempty"`
}

// DeactivateResult is OpDeactivate's result.
type DeactivateResult struct {
	// Removed are the routes as they were before.
	Removed []RouteInfo `json:"removed"`
	// Stopped are the instances no location serves any more.
	Stopped []string `json:"stopped"`
}

// RouteInfo is one route of the node's table.
type RouteInfo struct {
	Location string `json:"location"`
	App      string `json:"app"`
	Live     string `json:"live,omitempty"`
	Prev     string `json:"prev,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
	// Certificate is the state of an https location's certificate (nil
	// for http locations and wildcards, whose names get one each).
	Certificate *CertificateInfo `json:"certificate,omitempty"`
}

// CertificateInfo is what the node's front server has done about the
// certificate of an https location's host.
type CertificateInfo struct {
	Host string `json:"host"`
	// NotAfter is when the certificate it holds expires; zero when it
	// holds none.
	NotAfter time.Time `json:"not_after,omitzero"`
	// Issuer is the issuing CA's name.
	Issuer string `json:"issuer,omitempty"`
	// Error is the reason its last try to obtain or renew one failed (the
	// CA's answer, from the front server's log), and ErrorAt when; empty
	// when the last try succeeded or none is in the log.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitzero"`
}

// QueryArgs are OpQuery's arguments.
type QueryArgs struct {
	// Patterns are shell globs matched against app names and, as
	// router patterns, against locations; none means everything.
	Patterns []string `json:"patterns,omitempty"`
	// Releases is how many of each app's latest releases to return.
	Releases int `json:"releases,omitempty"`
}

// QueryResult is OpQuery's result.
type QueryResult struct {
	Apps     []AppInfo   `json:"apps"`
	Routes   []RouteInfo `json:"routes"`
	Disabled []string    `json:"disabled"`
}

// AppInfo is one application on a node.
type AppInfo struct {
	Name      string         `json:"name"`
	Disabled  bool           `json:"disabled,omitempty"`
	Instances []InstanceInfo `json:"instances"`
	Releases  []Release      `json:"releases,omitempty"`
	// Crons and Workers are its jobs on the node.
	Crons   []CronInfo   `json:"crons,omitempty"`
	Workers []WorkerInfo `json:"workers,omitempty"`
	// Services are the live instance's services and the size of the
	// app's data in each (never their credentials).
	Services []ServiceUsage `json:"services,omitempty"`
}

// CronInfo is one of an app's cron entries on a node.
type CronInfo struct {
	Name string `json:"name"`
	// Schedule is as app.ini gives it; Target the URL path requested or
	// "script:PATH ARGS".
	Schedule string `json:"schedule"`
	Target   string `json:"target"`
	// Instance runs it.
	Instance string `json:"instance,omitempty"`
	// Scheduled: its timer runs (not while the app is disabled, nor on a
	// node that does not run the app's crons).
	Scheduled bool `json:"scheduled"`
	// Next and Last are its next and last run (zero: none).
	Next time.Time `json:"next,omitzero"`
	Last time.Time `json:"last,omitzero"`
	// Running: a run is going on, since Started.
	Running bool      `json:"running,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// LastResult says how the last run ended: "success", "exit status
	// N", "timeout", ...; "" if it has not run since the node started.
	LastResult string `json:"last_result,omitempty"`
}

// WorkerInfo is one replica of an app's worker on a node.
type WorkerInfo struct {
	Name     string `json:"name"`
	Replica  int    `json:"replica"`
	Instance string `json:"instance"`
	// Unit is its systemd unit.
	Unit string `json:"unit"`
	// State is WorkerRunning, WorkerWaiting, ...
	State string `json:"state"`
	// Restarts counts its restarts after failures since it was started.
	Restarts int       `json:"restarts"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	// LastExit says how its last process ended, for a worker that is not
	// running ("exit status 1", "killed by signal 9", ...).
	LastExit string `json:"last_exit,omitempty"`
}

// Worker states (WorkerInfo.State).
const (
	WorkerRunning = "running"
	// WorkerWaiting: started, waiting until the copy of the instance
	// live before has stopped, or for its back-off after failures.
	WorkerWaiting    = "waiting"
	WorkerRestarting = "restarting"
	WorkerStopping   = "stopping"
	WorkerStopped    = "stopped"
	WorkerFailed     = "failed"
)

// InstanceInfo is one instance directory of an app.
type InstanceInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
	// Live and Prev list the locations where it is live or prev.
	Live []string `json:"live,omitempty"`
	Prev []string `json:"prev,omitempty"`
	// State is the unit's state ("active", "inactive", ...), "static" for
	// an app without a process.
	State   string    `json:"state,omitempty"`
	Created time.Time `json:"created,omitempty"`
	Digest  string    `json:"digest,omitempty"`
}

// Release is one line of an app's releases.jsonl: what an update,
// activate or deactivate did.
type Release struct {
	Number int `json:"number"`
	// Action is "update", "activate" or "deactivate".
	Action string `json:"action"`
	// Instance went live (update, activate) or was taken down
	// (deactivate); Prev is what it replaced.
	Instance  string    `json:"instance"`
	Prev      string    `json:"prev,omitempty"`
	Locations []string  `json:"locations"`
	Time      time.Time `json:"time"`
	LocalUser string    `json:"local_user,omitempty"`
	// Digest is the application manifest's digest (update).
	Digest string `json:"digest,omitempty"`
	// Version is the toppcloud version of the agent.
	Version string `json:"version"`
}

// CleanArgs are OpClean's arguments.
type CleanArgs struct {
	// DryRun reports what would go and removes nothing (clean-node -n).
	DryRun bool `json:"dry_run,omitempty"`
}

// CleanResult is OpClean's result.
type CleanResult struct {
	// Removed are the instance directories removed (or that would be).
	Removed []string `json:"removed"`
	// Kept are the instances some location serves or keeps as prev.
	Kept []string `json:"kept"`
	// Skipped are apps left alone because an operation on them runs.
	Skipped []string `json:"skipped,omitempty"`
	// Partial counts unfinished instance directories and temporary
	// files of interrupted uploads removed.
	Partial int `json:"partial"`
	// Blobs and BlobBytes are the stored contents no instance uses any
	// more, removed.
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blob_bytes"`
	// Manifests counts kept manifests of uploads that never deployed.
	Manifests int `json:"manifests"`
}

// DisableArgs are the arguments of OpDisable and OpEnable: an app by
// name, or the app a location serves.
type DisableArgs struct {
	App      string `json:"app,omitempty"`
	Location string `json:"location,omitempty"`
}

// DisableResult is the result of OpDisable and OpEnable.
type DisableResult struct {
	App string `json:"app"`
	// Changed is false when the app already was as asked.
	Changed   bool     `json:"changed"`
	Locations []string `json:"locations"`
}

// LogsArgs are OpLogs's arguments. Lines come as Log messages (streams
// StreamJournal and StreamErrorsLog); with Follow the operation runs until
// the client goes away.
type LogsArgs struct {
	Location string `json:"location"`
	Lines    int    `json:"lines,omitempty"`
	Follow   bool   `json:"follow,omitempty"`
	// Job, if set, shows only that cron entry's or worker's output.
	Job string `json:"job,omitempty"`
}

// LogsResult is OpLogs's result.
type LogsResult struct {
	App string `json:"app"`
	// Instance is the live instance whose journal was shown.
	Instance string `json:"instance"`
}

// RestoreResult is OpRestore's result (it takes no arguments): what had
// to be put back.
type RestoreResult struct {
	Started  []string `json:"started"`
	Relinked []string `json:"relinked"`
	Reloaded bool     `json:"reloaded"`
	Problems []string `json:"problems,omitempty"`
}
