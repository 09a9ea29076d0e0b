package protocol

import "time"

// This file holds every name client and agent agree on: operations, error
// codes, log streams, and the node facts both sides assume. New ones go
// here, not beside the types that use them.

// Operation names: `toppcloud node OP`.
//
// OpVersion and OpInstallAgent are how a client brings an agent of another
// version up to date, so their request and output shapes never change:
// every agent, old or new, must understand them.
const (
	// OpVersion prints a bare VersionInfo object; it reads no request.
	OpVersion = "version"
	// OpInstallAgent replaces the agent binary with the one streamed after
	// the request (InstallAgentArgs). It accepts any Request.Protocol.
	OpInstallAgent = "install-agent"
	// OpInfo returns InfoResult.
	OpInfo = "info"
	// OpSetup runs setup-node's steps (SetupArgs, SetupResult).
	OpSetup = "setup"
	// OpNodeCA returns the root certificate of the node's internal CA
	// (NodeCAResult).
	OpNodeCA = "node-ca"

	// Operations on applications (toppcloud update and the commands
	// around it).
	//
	// OpUpdate is an update in one request: UpdateArgs; the app's
	// manifest (and, with UpdateArgs.Config, the --config directory's)
	// follows the request line; the agent keeps it and answers with a
	// TypeReply message holding UpdateNeed, the contents it lacks; the
	// client then sends one blob stream of what it names (nothing when
	// it names nothing), and the agent makes, starts and switches to the
	// instance as OpDeploy does (UpdateResult). One agent process, one
	// SSH session, one round trip besides the data. A held update
	// (UpdateArgs.Hold) stops before the switch with a second TypeReply,
	// UpdateHeld, and reads one HoldDecision line after the blob stream.
	//
	// OpDeploy makes an instance from a manifest an update kept, starts
	// it and switches traffic to it (DeployArgs, DeployResult).
	OpUpdate     = "update"
	OpDeploy     = "deploy"
	OpActivate   = "activate"
	OpDeactivate = "deactivate"
	OpQuery      = "query"
	OpClean      = "clean"
	OpDisable    = "disable"
	OpEnable     = "enable"
	OpLogs       = "logs"
	OpRestore    = "restore"
	// OpDiff compares an application directory with a deployed instance
	// (DiffArgs; the client's manifest follows the request line): the
	// contents of the instance's files that differ come as StreamDiffFile
	// log lines, then a DiffResult. It changes nothing.
	OpDiff = "diff"

	// Operations on an app's services' data. Each names the app by a
	// location it is live at, as the original's commands did.

	// OpBackup backs up every service of the app into a backup kept on
	// the node (BackupArgs, BackupResult).
	OpBackup = "backup"
	// OpBackupFetch sends a kept backup: its result (BackupResult), then
	// the backup as a tar stream on the same output (BackupFetchArgs).
	OpBackupFetch = "backup-fetch"
	// OpBackupDelete removes a kept backup (BackupDeleteArgs).
	OpBackupDelete = "backup-delete"
	// OpServicesRestore restores the app's services from a backup kept on
	// the node, or from one streamed as a tar after the request
	// (ServicesRestoreArgs, ServicesRestoreResult).
	OpServicesRestore = "services-restore"
	// OpClear drops and recreates every service's data of the app, then
	// runs update_fetch against its live instance (ClearArgs, ClearResult).
	OpClear = "clear"
	// OpRunUpload keeps files for a run: a tar stream follows the request
	// (RunUploadArgs, RunUploadResult).
	OpRunUpload = "run-upload"
	// OpRun runs a script of the live instance with the app's
	// environment, in its sandbox. It is not a message stream: the
	// request is the argument after the operation (base64 of the JSON
	// Request, so that a terminal can be the standard input), the
	// script's output is the output, and its exit status the agent's.
	OpRun = "run"
	// OpPrevSync, `toppcloud node prev-sync APP`, is not a request: the
	// agent runs it in a transient unit after an update to arm the app's
	// previous instance for its prev. host (and stop the one it
	// replaces) without the client waiting. Its output goes to the
	// journal.
	OpPrevSync = "prev-sync"
)

// Exit statuses of the toppcloud binary: client commands and `toppcloud
// node OP` alike, kept stable for scripts. The client reads an agent's
// reason from the message stream, not from its status.
const (
	ExitOK     = 0
	ExitFailed = 1 // the operation failed
	ExitUsage  = 2 // bad usage or configuration; an operation the agent lacks
)

// TLS issuers (TLSSettings.Issuer).
const (
	// IssuerACME gets certificates from an ACME CA (Let's Encrypt by
	// default); the node must be reachable under the name on port 80 or
	// 443.
	IssuerACME = "acme"
	// IssuerInternal signs certificates with the node's own CA, which
	// clients trust only if told to (toppcloud node-ca).
	IssuerInternal = "internal"
)

// Node facts client and agent agree on.
const (
	// AgentPath is where the agent lives on every node.
	AgentPath = "/usr/local/bin/toppcloud"
	// DeployUser is the user deploys log in as. Its sudoers rule lets it
	// run `AgentPath node *` as root and nothing else.
	DeployUser = "www-mgr"
)

// DefaultHealthTimeout bounds the wait for a new instance to answer when a
// request says 0: long enough for a large application to import, short
// enough that a broken deploy fails while the user still watches. The
// client shows it as its flag default.
const DefaultHealthTimeout = 60 * time.Second

// Error codes (Error.Code): stable words programs can test.
const (
	CodeBadRequest    = "bad_request"
	CodeProtocol      = "protocol"
	CodeLocked        = "locked"
	CodeNotFound      = "not_found"
	CodeCommandFailed = "command_failed"
	CodeUnhealthy     = "unhealthy"
	CodeInternal      = "internal"
	CodeUnsupported   = "unsupported"
	// CodeDiskFull: the node ran out of disk space; free some and re-run.
	CodeDiskFull = "disk_full"
	// CodeUnsupportedOS: the node runs something other than Debian or
	// Ubuntu.
	CodeUnsupportedOS = "unsupported_os"
	// CodeConfigRequired: the app requires a configuration (config.required)
	// and none was uploaded, ever, nor has it a config.default.
	CodeConfigRequired = "config_required"
	// CodeFetchFailed: an update_fetch entry failed against the new
	// instance.
	CodeFetchFailed = "fetch_failed"
	// CodeConfigRefused: app.ini's config.checker refused the app's
	// configuration.
	CodeConfigRefused = "config_refused"
	// CodeAgentDiffers: the request named an agent (Request.Fingerprint)
	// other than this one; nothing was done.
	CodeAgentDiffers = "agent_differs"
	// CodeAborted: a held update (UpdateArgs.Hold) was not committed;
	// its new instance was removed and the live one kept serving.
	CodeAborted = "aborted"
)

// Log streams (Log.Stream).
const (
	// StreamStdout and StreamStderr are the output of a command the agent
	// ran (apt-get, systemctl, ...).
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	// StreamAgent is the agent's own progress notes (Call.Logf).
	StreamAgent = "agent"
	// StreamWarning is something the user should act on; the client shows
	// it even with -q.
	StreamWarning = "warning"
	// StreamApp is the application's own output: update_fetch responses
	// and scripts.
	StreamApp = "app"
	// StreamJournal and StreamErrorsLog are the two sources of `logs`.
	StreamJournal   = "journal"
	StreamErrorsLog = "errors.log"
	// StreamDiffFile carries one file of OpDiff: its Text is a DiffFile
	// as JSON.
	StreamDiffFile = "diff-file"
	// StreamFrontServer is, for an https location, the front server's log
	// lines about its host's certificate.
	StreamFrontServer = "front-server"
)
