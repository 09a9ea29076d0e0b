package agent

import (
	"context"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// cleanPartialAge: an unfinished instance directory older than this
// belongs to an update that was killed (assembling takes seconds).
const cleanPartialAge = 10 * time.Minute

// clean removes, in this order: instances no route has as live or prev
// (app by app, under each app's lock), links directories whose instance
// is gone, partial instance directories and, from the blob store, what no
// instance and no kept manifest uses.
func (a *Agent) clean(ctx context.Context, c *Call, args *protocol.CleanArgs) (*protocol.CleanResult, error) {
	res := &protocol.CleanResult{Removed: []string{}, Kept: []string{}}
	// With no upload running, everything an interrupted upload left can
	// go, however young; with one running, only what is old.
	uploads, err := a.Locks().Acquire(ctx, uploadsLock, "clean-node", 5*time.Second, nil)
	exclusive := err == nil
	if exclusive {
		defer uploads()
	} else {
		c.Warnf("an upload is running: its contents and other recent uploads are kept")
	}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	if err := a.cleanInstances(ctx, c, args.DryRun, res); err != nil {
		return nil, err
	}
	a.cleanLinks(t, args.DryRun, res)

	age := cleanPartialAge
	if exclusive && len(res.Skipped) == 0 {
		age = time.Nanosecond
	}
	if !args.DryRun {
		n, err := blobstore.CleanPartial(a.Host.Path(a.Layout.WWW), age, a.Host.Time())
		if err != nil {
			c.Warnf("partial instances: %v", err)
		}
		res.Partial += n
		// Restores that were cut off left their upload behind; one that
		// is still receiving (gigabytes over a slow link) is younger.
		n, err = a.backupStore().RemoveUploads(24 * time.Hour)
		if err != nil {
			c.Warnf("backup uploads: %v", err)
		}
		res.Partial += n
	}

	opts := blobstore.Options{}
	if exclusive {
		opts.TempAge, opts.PendingAge = time.Nanosecond, time.Nanosecond
	}
	store, err := blobstore.Open(a.Host.Path(a.Layout.Blobs), opts)
	if err != nil {
		return nil, err
	}
	gs, err := store.GC(ctx, blobstore.GCOptions{DryRun: args.DryRun})
	if err != nil {
		return nil, err
	}
	res.Blobs, res.BlobBytes, res.Manifests = gs.Blobs, gs.Bytes, gs.Manifests
	res.Partial += gs.Temps
	return res, nil
}

// cleanLockWait is how long clean-node waits for an app's lock: long
// enough for the prev. host sync that follows every update (prev.go,
// about a second; more on a busy node), short enough not to wait out an
// update.
const cleanLockWait = 15 * time.Second

// cleanInstances removes the instances no route has, app by app under
// the app's lock; an app whose lock stays taken (an update of it runs:
// its new instance is in no route yet) is skipped.
func (a *Agent) cleanInstances(ctx context.Context, c *Call, dryRun bool, res *protocol.CleanResult) error {
	nodes := a.instances()
	disk, err := nodes.OnDisk()
	if err != nil {
		return err
	}
	for _, app := range slices.Sorted(maps.Keys(disk)) {
		release, err := a.Locks().Acquire(ctx, appLockName(app), "clean-node", cleanLockWait, nil)
		if err != nil {
			res.Skipped = append(res.Skipped, app)
			continue
		}
		// Read under the app's lock: an update may just have switched.
		t, err := a.loadTable(c)
		if err != nil {
			release()
			c.Warnf("%v", err)
			continue
		}
		keep := map[string]bool{}
		for _, in := range t.Instances() {
			keep[in] = true
		}
		for _, in := range disk[app] {
			if keep[in] {
				res.Kept = append(res.Kept, in)
				continue
			}
			res.Removed = append(res.Removed, in)
			if dryRun {
				continue
			}
			if err := nodes.Remove(ctx, in); err != nil {
				c.Warnf("remove %s: %v", in, err)
			}
		}
		release()
	}
	return nil
}

// cleanLinks removes the links directories whose instance directory is
// gone, but those of t's instances and of skipped apps.
func (a *Agent) cleanLinks(t *router.Table, dryRun bool, res *protocol.CleanResult) {
	entries, err := os.ReadDir(a.Host.Path(a.Layout.Instances))
	if err != nil || dryRun {
		return
	}
	keep := map[string]bool{}
	for _, in := range t.Instances() {
		keep[in] = true
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if ok, _ := a.Host.Exists(a.Layout.InstanceDir(e.Name())); ok {
			continue
		}
		if app, ok := instance.SplitName(e.Name()); ok && slices.Contains(res.Skipped, app) {
			continue
		}
		_ = os.RemoveAll(a.Host.Path(a.Layout.LinksDir(e.Name())))
	}
}
