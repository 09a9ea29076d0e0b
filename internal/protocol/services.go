package protocol

import "time"

// BackupArgs are OpBackup's arguments.
type BackupArgs struct {
	Location string `json:"location"`
	// App, on a site's services node, names the app whose services
	// (kept there by OpSiteServices) to work on, instead of Location.
	App string `json:"app,omitempty"`
	// Name is the backup's name on the node (remote:NAME); "" makes one
	// (backup-APP-YYYY-MM-DD[_NNN]) that the client fetches and deletes.
	Name     string   `json:"name,omitempty"`
	LockWait Duration `json:"lock_wait,omitempty"`
}

// BackupResult is what OpBackup made (and what OpBackupFetch sends).
type BackupResult struct {
	App  string `json:"app"`
	Name string `json:"name"`
	// Path is where it is on the node.
	Path     string       `json:"path"`
	Created  time.Time    `json:"created"`
	Services []BackupPart `json:"services"`
	// Bytes is the size of all its files.
	Bytes int64 `json:"bytes"`
}

// BackupPart is one service's files in a backup.
type BackupPart struct {
	Service string `json:"service"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
}

// BackupFetchArgs are OpBackupFetch's arguments.
type BackupFetchArgs struct {
	Name string `json:"name"`
}

// BackupDeleteArgs are OpBackupDelete's arguments.
type BackupDeleteArgs struct {
	Name string `json:"name"`
}

// ServicesRestoreArgs are OpServicesRestore's arguments.
type ServicesRestoreArgs struct {
	Location string `json:"location"`
	// App, on a site's services node, names the app whose services
	// (kept there by OpSiteServices) to work on, instead of Location.
	App string `json:"app,omitempty"`
	// Name is a backup kept on the node; "" means the backup follows the
	// request as a tar stream (it is unpacked and checked before anything
	// is changed, and removed afterwards).
	Name     string   `json:"name,omitempty"`
	LockWait Duration `json:"lock_wait,omitempty"`
}

// ServicesRestoreResult is OpServicesRestore's result.
type ServicesRestoreResult struct {
	App      string   `json:"app"`
	Services []string `json:"services"`
	// Made is when the backup was made.
	Made  time.Time `json:"made"`
	Bytes int64     `json:"bytes"`
}

// ClearArgs are OpClear's arguments.
type ClearArgs struct {
	Location string   `json:"location"`
	LockWait Duration `json:"lock_wait,omitempty"`
	// App is BackupArgs.App (a services node runs no update_fetch).
	App string `json:"app,omitempty"`
	// FetchOnly clears nothing: it runs the update_fetch of the live
	// instance at Location only. The client sends it to a site's app node
	// after clearing the app's data on the services node.
	FetchOnly bool `json:"fetch_only,omitempty"`
}

// ClearResult is OpClear's result.
type ClearResult struct {
	App      string   `json:"app"`
	Instance string   `json:"instance"`
	Services []string `json:"services"`
}

// RunUploadArgs are OpRunUpload's arguments.
type RunUploadArgs struct {
	Location string `json:"location"`
}

// RunUploadResult is OpRunUpload's result: where the files are, as the
// script sees them ($TMP in the original).
type RunUploadResult struct {
	Dir string `json:"dir"`
}

// RunArgs are OpRun's arguments.
type RunArgs struct {
	Location string `json:"location"`
	// Script is bin/S or S of the instance, or an absolute path.
	Script string   `json:"script"`
	Args   []string `json:"args,omitempty"`
	// Terminal: the standard input and output are a terminal (run -i).
	Terminal bool `json:"terminal,omitempty"`
	// Uploaded is the directory OpRunUpload made, removed after the run.
	Uploaded string `json:"uploaded,omitempty"`
}

// ServiceUsage is one service of an app, for query.
type ServiceUsage struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	Items int64  `json:"items"`
	Unit  string `json:"unit"`
	// Error says why the size is missing (the server is down).
	Error string `json:"error,omitempty"`
}
