// Package pki keeps the root's key material and authenticates the two
// ends of the root's TLS port, in the manner of kubeadm's join tokens.
// It uses the standard library's crypto only; every connection is TLS
// 1.3, every key ECDSA P-256 (nodes may also bring Ed25519 keys).
//
// # Files
//
// Open keeps everything in the state directory's pki/ subdirectory (mode
// 0700, every file 0600; Open sets these modes when they differ and
// refuses a directory that is a symbolic link or another user's):
//
//	ca.key, ca.crt          the certificate authority (PEM), 10 years
//	join.secret             the join secret: 256 random bits, base64url, one line
//	head.secret             the head secret (made on first use), as join.secret
//	viewer.secret           the viewer secret (made on first use), as join.secret
//	metrics.secret          the metrics token (made on first use), as join.secret
//	server.crt, server.key  the root's server certificate (1 year) and key
//	nodes                   one line per enrolment: "NODE-ID SERIAL-HEX TIME"
//	revoked                 one line per revoked node: "NODE-ID TIME"
//	lock                    flock(2) target that serialises every change
//	version                 the version of these files' formats: "1", one line
//
// A directory without a version file (made before the formats had one)
// is version 1, and Open writes the file; one of a newer version is
// refused, untouched, with a message that says what to do (see
// FormatVersion).
//
// Files are written whole to a temporary file (mode 0600 from creation),
// synced and renamed into place, under an exclusive flock on pki/lock, so
// two processes opening a fresh directory at once make one authority, and
// a crash leaves either the old file or the new. Every certificate's
// validity starts an hour before it was issued, for peers whose clocks
// are behind; serial numbers are 128 random bits.
//
// # Join token
//
// `orrery token` prints one URL-safe line:
//
//	orrery1.<base64url(SHA-256(CA SubjectPublicKeyInfo DER))>.<join secret>
//
// The token works both ways. The hash lets a node trust the root with no
// earlier contact and no trust on first use: ClientConfig accepts a
// server only when its chain holds a CA whose public key has that hash
// and whose signature is on a server certificate naming the address the
// node dialled (when it does not, the error says to start the root with
// --advertise NAME). Hashing the key rather than the certificate keeps a
// token valid if the CA certificate is ever reissued for the same key.
// The secret lets the root trust the node: it is sent only inside that
// verified TLS connection, so a node never hands it to an impostor.
//
// # Enrolment
//
// A node without an identity connects with no client certificate and
// sends the secret and a public key it made (protocol.Hello, NewNodeKey).
// The root checks the secret (CheckSecret, in constant time, against the
// file as it is now) and Enrol issues a client certificate for the key,
// with a unique node ID as its common name, recorded in pki/nodes before
// the certificate goes out (protocol.Enrolled). From then on the node
// shows that certificate in the handshake (NodeCertificate) and the root
// checks it with VerifyNode: signed by the CA, for client authentication,
// issued at an enrolment, not revoked. The server's TLS configuration
// (ServerConfig) requests client certificates but does not require them,
// for enrolling nodes' sake, so the caller must authenticate every
// connection before it serves anything on it.
//
// # Rotation, revocation, renewal
//
// Rotate replaces the join secret: printed tokens stop enrolling nodes,
// enrolled nodes keep working, since their certificates do not depend on
// the secret. Revoke adds a node to pki/revoked; VerifyNode refuses it
// from then on. Both take effect at once in a root already running from
// the same directory: CheckSecret, Revoked and VerifyNode read the files
// again whenever they changed (inode, size or times). An unreadable
// revocation list refuses every node.
//
// The server certificate names what the caller passes (listen host, host
// names and addresses, advertised name). It is reused while it names
// them all and has more than 30 days left, and renewed otherwise; a
// handshake that finds it within 30 days of its end renews it, so a root
// that runs for months needs no restart. Node certificates last a year
// and are not renewed here: a node enrols again. The CA lasts ten years;
// replacing it means new tokens and enrolling every node again.
//
// # Viewers and metrics
//
// The web page and /metrics on the same port have credentials of their
// own, each 256 random bits made on first use, never equal to nor
// derived from the join secret or the head secret (nor from each
// other), so a viewer URL or a Prometheus configuration that leaks
// enrols no node and speaks for no cluster:
//
//   - the viewer secret (ViewerSecret), which `orrery token --viewer`
//     prints in the page's URL. The page exchanges it for a cookie
//     (ViewerCookie): the hex HMAC-SHA256, keyed with the secret, of
//     "orrery viewer cookie v1", so the cookie does not reveal the
//     secret and changes when it is rotated. CheckViewer and
//     CheckViewerCookie check them.
//   - the metrics token (MetricsToken), the bearer token Prometheus
//     sends (`orrery token --metrics`); CheckMetrics checks it.
//
// Every check is in constant time, against the file as it is now (read
// again when it changed, as the join secret is), and refuses an empty
// value; RotateViewer and RotateMetrics replace a secret, and the old
// secret and cookie stop working at once in a root running from the
// same directory. A secret file that holds the same secret as another
// is refused. CAPEM gives the CA certificate for a browser or
// Prometheus to trust (`orrery token --ca`).
package pki
