// Package headcache is a cluster head's staging store, on the head's
// disk: a content-addressed cache of the root's input files, so an input
// common to many jobs crosses the wide-area link once per cluster, and a
// spool of each root attempt's results, which wait on the head's disk
// until the root has them.
//
// Layout of the directory given to Open:
//
//	objects/<sha256>        cached files, named by the hex SHA-256 of their content
//	tmp/                    files being fetched (cleared by Open)
//	spool/<job>.<attempt>/  one root attempt's results:
//	    manifest            JSON lines: {"put":SEQ,"name":..,"perm":..,"size":..}, {"sent":SEQ}
//	    f<SEQ>              the content of put SEQ, until the root confirmed it
//
// The cache knows a root file's hash from the root's stat reply
// (protocol.FileInfo.SHA256, filled in by protocol.RootServer): Cache.Root
// type-asserts the upstream's fs.FileInfo to *protocol.FileInfo, the
// type every protocol.Peer returns. A file without a hash (another Root,
// or one the root could not hash) passes through uncached.
//
// Every file is written under a temporary name, synced, and renamed into
// place (its directory synced), and a spool's manifest record is synced
// before the Put it records returns: what the cache or a spool holds
// survives a crash of the head. A full disk (ENOSPC, EDQUOT) is an error
// wrapping ErrDiskFull that names the head's directory: a system failure
// of the cluster, never a job's.
package headcache
