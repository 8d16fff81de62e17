package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrBlockedAddress is a webhook URL, or the address its host resolves to,
// inside the ranges a webhook may not reach: loopback, link-local,
// private, shared (CGNAT), unspecified, multicast and reserved addresses.
// A receiver on such an address is reached only when the operator allows
// it (GRADEFLOW_WEBHOOK_ALLOW_PRIVATE), so that staff-supplied URLs
// cannot probe the evaluation network or the host's own services.
var ErrBlockedAddress = errors.New("webhook address not allowed")

// blocked are the ranges refused besides what netip classifies itself.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:10::/28"),    // ORCHID
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
}

// PublicAddress reports whether ip is an address a webhook may reach
// without the operator's permission.
func PublicAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckURL validates a webhook URL as staff give it: an absolute http or
// https URL with a host and no credentials. Unless allowPrivate, a host
// that is an IP address must be public and a name must not be a local one
// (localhost and the like); names are checked again, by the address they
// resolve to, each time a delivery connects.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials; the body is signed instead")
	}
	if allowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !PublicAddress(ip) {
			return fmt.Errorf("%s is a loopback, link-local, private or reserved address: %w", host, ErrBlockedAddress)
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".local") ||
		strings.HasSuffix(host, ".internal") || !strings.Contains(host, ".") {
		return fmt.Errorf("%s is a local host name: %w", host, ErrBlockedAddress)
	}
	return nil
}

// guardDial is a net.Dialer Control function that refuses to connect to a
// non-public address: it sees the address a name resolved to, so a name
// that resolves (or rebinds) to a private address is refused too.
func guardDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial %s: %w", address, ErrBlockedAddress)
	}
	if !PublicAddress(ap.Addr()) {
		return fmt.Errorf("webhook dial %s: %w", ap.Addr(), ErrBlockedAddress)
	}
	return nil
}

// transport returns the HTTP transport of deliveries: no proxy from the
// environment (it would hide the real destination), and, unless
// allowPrivate, every connection checked by guardDial.
func transport(allowPrivate bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = guardDial
	}
	t.DialContext = d.DialContext
	t.MaxResponseHeaderBytes = 16 << 10
	return t
}
