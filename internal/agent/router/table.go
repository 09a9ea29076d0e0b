package router

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
)

// Prev is the instance name Activate takes to mean "the previous instance".
const Prev = "prev"

// Sentinels for table operations.
var (
	// ErrNoRoute: no route at that location.
	ErrNoRoute = errors.New("no route at that location")
	// ErrNoPrev: the route has no previous instance to activate.
	ErrNoPrev = errors.New("no previous instance")
	// ErrUnknownApp: no route serves that app.
	ErrUnknownApp = errors.New("no route serves that app")
	// ErrInvalidName: an app or instance name that cannot be used.
	ErrInvalidName = errors.New("invalid name")
)

// Route is one mount: a location served by an app's live instance.
type Route struct {
	Location location.Location
	// App is the app name (app.ini app_name).
	App string
	// Live is the instance serving requests. It is "" only when the route
	// was deactivated with keep-prev: then nothing is served there, and
	// Prev remains for `activate prev`.
	Live string
	// Prev is the instance that was live before, kept for rollback; "" if
	// none.
	Prev string

	// prevOf is the host of the route whose previous instance this route
	// serves; set only on the routes Served makes, never stored.
	prevOf string
	// site is the balanced site of a route Render makes for
	// Options.Balanced; nil for the table's.
	site *Balanced
}

// Active reports whether the route serves requests.
func (r Route) Active() bool { return r.Live != "" }

// PrevPrefix makes the host a route's previous instance answers at:
// prev.example.com/blog serves what example.com/blog served before the
// last deploy, so that a rollback can be checked before it is made (as in
// the original).
const PrevPrefix = "prev."

// IsPrev reports whether the route is the prev. route of another one
// (made by Served). Its Live is that route's Prev, "" when there is none:
// then the router answers 404 there rather than let a wildcard or
// catch-all route of another app have the name.
func (r Route) IsPrev() bool { return r.prevOf != "" }

// PrevOf is the host whose previous instance a prev. route serves; "" for
// any other route.
func (r Route) PrevOf() string { return r.prevOf }

// served reports whether the router renders the route.
func (r Route) served() bool { return r.Active() || r.IsPrev() || r.site != nil }

// Served returns the routes the router serves: the table's, and for each
// route with an exact host name (not a wildcard, the catch-all or an IP
// address), a route at prev.HOST with the same port, path and scheme whose
// live instance is the route's previous one (none: not found), unless the
// table has a route at that location itself. A route deactivated with
// keep-prev keeps its prev. route, as the original kept its prev. line.
func (t *Table) Served() []Route {
	out := slices.Clone(t.Routes)
	for _, r := range t.Routes {
		l := r.Location
		if l.Wildcard() || l.CatchAll() || l.IP() || (!r.Active() && r.Prev == "") {
			continue
		}
		l.Host = PrevPrefix + l.Host
		if _, taken := t.index(l); taken {
			continue
		}
		out = append(out, Route{Location: l, App: r.App, Live: r.Prev, prevOf: r.Location.Host})
	}
	return out
}

// Table is the route table. Routes are kept sorted by location key;
// Disabled is a sorted set of app names.
type Table struct {
	Routes   []Route
	Disabled []string
}

// Clone returns a deep copy.
func (t *Table) Clone() *Table {
	return &Table{Routes: slices.Clone(t.Routes), Disabled: slices.Clone(t.Disabled)}
}

var instanceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateApp checks an app name by the one rule there is
// (appconfig.CheckAppName). Names end up in file paths of the rendered
// config, so nothing else may pass.
func ValidateApp(name string) error {
	if err := appconfig.CheckAppName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return nil
}

// ValidateInstance checks an instance name: letters, digits, '.', '-' and
// '_', starting with a letter or digit, at most 128 characters.
func ValidateInstance(name string) error {
	if !instanceNameRE.MatchString(name) || name == Prev {
		return fmt.Errorf("instance name %q: %w: use letters, digits, '.', '-' and '_' (at most 128, starting with a letter or digit)", name, ErrInvalidName)
	}
	return nil
}

func (t *Table) index(loc location.Location) (int, bool) {
	return slices.BinarySearchFunc(t.Routes, loc.Key(), func(r Route, key string) int {
		return strings.Compare(r.Location.Key(), key)
	})
}

// Lookup returns the route at exactly loc (same host, port and path; the
// scheme does not take part).
func (t *Table) Lookup(loc location.Location) (Route, bool) {
	i, ok := t.index(loc)
	if !ok {
		return Route{}, false
	}
	return t.Routes[i], true
}

// Set makes instance the live instance of app at loc, creating the route if
// needed. The instance it replaces becomes Prev (the original's prev.*
// rotation; the older prev is dropped). Setting the instance that is
// already live changes nothing but the scheme. If loc was serving another
// app, that app's instances are dropped: a rollback across apps makes no
// sense. It returns the route as it now is.
func (t *Table) Set(loc location.Location, app, instance string) (Route, error) {
	if err := ValidateApp(app); err != nil {
		return Route{}, err
	}
	if err := ValidateInstance(instance); err != nil {
		return Route{}, err
	}
	i, ok := t.index(loc)
	if !ok {
		r := Route{Location: loc, App: app, Live: instance}
		t.Routes = slices.Insert(t.Routes, i, r)
		return r, nil
	}
	r := &t.Routes[i]
	r.Location = loc
	switch {
	case r.App != app:
		*r = Route{Location: loc, App: app, Live: instance}
	case r.Live == instance:
	case r.Live == "":
		// Deactivated with keep-prev: the prev stays what it was.
		r.Live = instance
	default:
		r.Prev, r.Live = r.Live, instance
	}
	return *r, nil
}

// Activate makes instance live at loc, which must already have a route.
// Prev swaps the live and previous instances (rollback; activating prev
// again rolls forward). Any other instance name becomes live and the
// instance it replaces becomes Prev.
func (t *Table) Activate(loc location.Location, instance string) (Route, error) {
	i, ok := t.index(loc)
	if !ok {
		return Route{}, fmt.Errorf("activate %s: %w", loc, ErrNoRoute)
	}
	r := &t.Routes[i]
	if instance == Prev {
		if r.Prev == "" {
			return Route{}, fmt.Errorf("activate %s prev: %w", loc, ErrNoPrev)
		}
		r.Live, r.Prev = r.Prev, r.Live
		return *r, nil
	}
	if err := ValidateInstance(instance); err != nil {
		return Route{}, fmt.Errorf("activate %s: %w", loc, err)
	}
	switch {
	case r.Live == instance:
	case r.Prev == instance:
		r.Live, r.Prev = r.Prev, r.Live
	case r.Live == "":
		r.Live = instance
	default:
		r.Prev, r.Live = r.Live, instance
	}
	return *r, nil
}

// Remove deactivates every route matching one of the patterns and returns
// the routes as they were before. Without keepPrev a matching route
// disappears with its instances. With keepPrev (the original's
// --keep-prev, "keep the prev.* host") only the live instance goes: the
// route stays, serving nothing, with its Prev for `activate LOCATION prev`
// and for clean-node to keep; a route with no Prev disappears.
func (t *Table) Remove(patterns []Pattern, keepPrev bool) []Route {
	var removed []Route
	kept := make([]Route, 0, len(t.Routes))
	for _, r := range t.Routes {
		switch {
		case !matchesAny(patterns, r.Location):
			kept = append(kept, r)
		case !r.Active() && keepPrev:
			// Already deactivated with its prev kept: nothing to do.
			kept = append(kept, r)
		case !r.Active():
			removed = append(removed, r)
		default:
			removed = append(removed, r)
			if keepPrev && r.Prev != "" {
				r.Live = ""
				kept = append(kept, r)
			}
		}
	}
	t.Routes = kept
	return removed
}

// Find returns the routes matching any of the patterns (all routes when
// there are none), for query.
func (t *Table) Find(patterns []Pattern) []Route {
	var out []Route
	for _, r := range t.Routes {
		if len(patterns) == 0 || matchesAny(patterns, r.Location) {
			out = append(out, r)
		}
	}
	return out
}

// RoutesFor returns the routes serving app, active or not.
func (t *Table) RoutesFor(app string) []Route {
	var out []Route
	for _, r := range t.Routes {
		if r.App == app {
			out = append(out, r)
		}
	}
	return out
}

// Instances returns every instance the table refers to (live or prev),
// sorted: what clean-node must keep.
func (t *Table) Instances() []string {
	var out []string
	for _, r := range t.Routes {
		for _, in := range []string{r.Live, r.Prev} {
			if in != "" {
				out = append(out, in)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// IsDisabled reports whether app is disabled.
func (t *Table) IsDisabled(app string) bool {
	_, ok := slices.BinarySearch(t.Disabled, app)
	return ok
}

// Disable makes every location of app serve the disabled page, keeping it
// deployed. It reports whether anything changed (false: already
// disabled). The app must have a route, as the original required.
func (t *Table) Disable(app string) (bool, error) {
	if len(t.RoutesFor(app)) == 0 {
		return false, fmt.Errorf("disable %s: %w", app, ErrUnknownApp)
	}
	i, found := slices.BinarySearch(t.Disabled, app)
	if found {
		return false, nil
	}
	t.Disabled = slices.Insert(t.Disabled, i, app)
	return true, nil
}

// Enable undoes Disable. It reports whether anything changed (false: the
// app was not disabled).
func (t *Table) Enable(app string) bool {
	i, found := slices.BinarySearch(t.Disabled, app)
	if !found {
		return false
	}
	t.Disabled = slices.Delete(t.Disabled, i, i+1)
	return true
}
