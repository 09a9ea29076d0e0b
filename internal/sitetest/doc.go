// Package sitetest checks a multi-node site end to end: four local nodes
// (a balancer, two app nodes and a services node) set up with
// `toppcloud setup-node --site`, an app on PostgreSQL deployed to the
// site, and what a site promises: no failed request through the balancer
// during rolling updates and an app node's stop and start, one database
// for every app node, database ports closed to all but the app nodes, and
// an update that fails on one app node leaving every node on the old
// version.
//
// The tests need root and real local nodes; they run only with
// TOPPCLOUD_INTEGRATION=1 and are skipped otherwise.
package sitetest
