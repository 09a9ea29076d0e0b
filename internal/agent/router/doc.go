// Package router owns a node's route table (/var/lib/toppcloud/routes.json)
// and turns it into the configuration of the node's two Caddy processes:
// which app answers a request (Match), the Caddy JSON configs that do the
// same (Render: the front server's, which holds client connections and
// TLS, and the router's, which holds the routes), and the admin API client
// that loads them (Admin, Applier). It runs inside the agent, as root.
//
// The table maps locations to apps: each route names the app, its live
// instance and its previous one (for `activate prev`); a set of disabled
// app names sits beside it. Table operations do no I/O; callers that may
// abandon a change work on a Clone, apply the rendered config, then save.
//
// # Decisions, against the original (Silver Lining's Apache rewrite map
// and its mod_wsgi dispatch)
//
//   - `.example.com` covers example.com itself and every name below it,
//     at any depth, as the original's lookup did ("." + host is tried
//     first). The most specific wildcard wins (the original let the
//     shortest suffix win: `.com` beat `.example.com`). Caddy's host
//     matcher takes `*.example.com` as one label only, so hosts are
//     matched with header_regexp on Host.
//   - Mounts match on whole path segments (the original's prefix test let
//     /blog match /blogger); paths are compared case-sensitively after
//     unescaping and cleaning, as Caddy's
//     path_regexp sees them.
//   - A location's port narrows the route to requests whose Host header
//     carries it, and opens a listener on it. Ports 80/443 are the
//     defaults of their scheme and are dropped.
//   - python and paste apps get the full path and MatchPathHeader, which
//     the WSGI bootstrap turns into SCRIPT_NAME; command apps get the path
//     below the mount plus X-Forwarded-Prefix (what apps behind a
//     path-prefix proxy usually expect); PHP gets the path below the mount,
//     SCRIPT_NAME with the mount put back, and SILVER_MATCH_PATH. Client
//     copies of both headers (and of X-Toppcloud-Internal, which marks the
//     agent's own requests) are deleted before routing.
//   - Inside a mount: static/, writable-root/HOST/, writable-root/, then
//     the app; a directory serves its index.html and gets its trailing
//     slash by redirect. The original also redirected ".../index.html" to
//     ".../"; Caddy's file server does not, and neither do we.
//   - Redirects are 308 (the original used 301): the method survives.
//   - A disabled app answers 503 with the built-in page on all its mounts,
//     static files included. There is no localhost bypass: internal
//     requests (update_fetch, run) go to the instance directly.
//     Upstream failures (502, 504) get the same page.
//   - Render gets a backend per route, not per instance, and nothing in
//     the config names a live instance: the agent points each route at a
//     stable path (a slot symlink) and switches instances by replacing the
//     symlink, so a deploy or an activate does not reload Caddy. Caddy
//     resolves the unix socket path at every connect and the file paths at
//     every request; connections to unix upstreams are not reused
//     (keep_alive off), so none outlives a switch.
//   - Request bodies under a megabyte are buffered before they are
//     proxied to HTTP upstreams (proxyRoutes): Caddy 2.6.2 otherwise races
//     its server's read-and-drop of a keep-alive client's unread body
//     against the proxy forwarding it, and answers a truncated 200.
//   - PHP: requests naming no file under php_root go to the app's runner
//     (the front controller, named in SCRIPT_FILENAME as php-fpm sees it),
//     as the original's master-runner did; without a runner, php_root's
//     index.php.
//   - prev.HOST/PATH is served by the previous instance of HOST/PATH (as
//     in the original), for exact host names, unless a route of its own is
//     there (Table.Served): a rollback can be checked before `activate
//     LOCATION prev`. The agent reaches a previous instance through a
//     socket that starts it on demand (instance/prev.go). With no previous
//     instance the name answers 404, so that no wildcard or catch-all
//     route of another app gets it. The pseudo-hosts not-found and
//     disabled are not deployable; both pages are built in.
//   - https:// locations: the front server's TLS server on HTTPSAddr (and
//     on any port an https location names) gets certificates on demand:
//     at the first handshake for a name, after asking the router (on
//     AskAddr) whether an https route has it, from an ACME CA or, for
//     nodes without public DNS, Caddy's internal CA. So a new https
//     location changes no front config, and `.example.com` gets a
//     certificate per name it serves. Plain requests to an https route
//     redirect (308). Caddy's automatic HTTPS is off on every server: it
//     would add redirects and certificate requests for plain-http routes.
//     https://* is refused (no certificate covers it).
//   - Balancers (Options.Balanced, a site's balancer node): the
//     locations of a balanced site are routes of the router, rendered
//     like an app's (host and mount matching, https redirects, ports,
//     certificates on demand), which proxy the request unchanged to the
//     site's app nodes (balancedInner). TLS ends at the front server as
//     for every route. The proxying is the router's, not the front
//     server's: taking a node out (OpBalance) changes the config, and a
//     front server reload would close idle keep-alive client connections
//     (see Render); a router reload fails no request. A balanced location
//     wins over a route of the node's own at the same place.
//   - Every router answers protocol.HealthHost/HealthPath with 200
//     (healthRoute): balancers check app nodes there, whatever apps run.
//   - Options.TrustProxies (an app node's balancer): requests from those
//     addresses carrying X-Forwarded-For keep their X-Forwarded-* and go
//     to the router server X-Forwarded-Proto names, so an https location
//     reached through the balancer is served over plain HTTP from it
//     (trustedRoutes). Caddy 2.6.2 has no server-wide trusted proxies.
//
// # Caddy 2.6.2 behaviour this relies on (checked in its source and by the
// integration tests)
//
//   - POST /load starts the new servers, then stops the old ones with the
//     http app's grace_period; it does not wait for them. Requests in
//     flight finish on the old config. Idle keep-alive connections are
//     closed (a request racing the close fails: why route changes reload
//     only the router, whose connections from the front server are used
//     once); websockets through the router are dropped.
//   - Unix socket listeners are kept open across a load (the new servers
//     take over the same socket), so no connection to the router is lost.
//   - TCP listeners use SO_REUSEPORT: the new config opens its own socket.
//     Connections the kernel queued on the old socket are reset when it
//     closes, unless net.ipv4.tcp_migrate_req=1 (setup-node's job). Only
//     the front server's config changes bring this up (a new port).
//   - On-demand TLS in 2.6.2 keeps a handshake waiting while it obtains
//     (and, after a failure, retries for up to 3 minutes); it renews an
//     on-demand certificate at a handshake in its last third of life, not
//     in the background. The ask request is plain HTTP over TCP.
//   - HTTP/3 servers are closed abruptly on a load: servers speak h1/h2.
//   - The admin API on a unix socket wants an empty Host header, and a
//     /load switches to the new config's admin endpoint even if the config
//     is then refused (Admin.Load checks the admin section first).
//   - static_response bodies go through the placeholder replacer: the
//     built-in pages contain no braces.
//   - reverse_proxy keeps active health per handler (a new config's
//     handlers check at once, and start out healthy), passive failures
//     per address across handlers and configs; /reverse_proxy/upstreams
//     reports requests and failures, not health. request_buffers does
//     not exist yet (buffer_requests with max_buffer_size does); a body
//     cannot be sent twice (caddy issue 5454), so requests with one are
//     not retried; others are, on dial errors, and GETs on any error.
package router
