package dhcp

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// Option is one of a port's extra DHCP options (Neutron's extra_dhcp_opts
// with ip_version 4), as Neutron hands them to dnsmasq: Name is dnsmasq's
// name of the option ("tftp-server", "bootfile-name",
// "server-ip-address", …) or its decimal code, Value is dnsmasq's text form
// of it (addresses separated by commas, a number, a string, hex bytes
// "01:02:ff").
type Option struct {
	Name, Value string
}

// kind is how dnsmasq reads the value of an option it knows.
type kind int

const (
	kindAuto      kind = iota // guessed from the value: addresses, hex, a number or a string
	kindAddrs                 // IPv4 addresses
	kindString                // the text itself
	kindU8                    // a number in one byte
	kindU16                   // in two
	kindU32                   // in four
	kindSearch                // domain names, RFC 1035 encoded (option 119)
	kindClassless             // dst/len,gateway pairs (option 121, RFC 3442)
	kindSIP                   // SIP servers as addresses (option 120, RFC 3361 encoding 1)
)

type optionDef struct {
	code uint8
	kind kind
}

// siaddrOption is dnsmasq's pseudo-option server-ip-address: not an option
// at all but the header's siaddr ("next server"), where PXE clients look for
// their TFTP server.
const siaddrOption = 255

// dnsmasqOptions are dnsmasq's names of DHCPv4 options (dnsmasq
// --help dhcp), the names Neutron's extra_dhcp_opts use.
var dnsmasqOptions = map[string]optionDef{
	"netmask":                  {1, kindAddrs},
	"time-offset":              {2, kindU32},
	"router":                   {3, kindAddrs},
	"dns-server":               {6, kindAddrs},
	"log-server":               {7, kindAddrs},
	"lpr-server":               {9, kindAddrs},
	"hostname":                 {12, kindString},
	"boot-file-size":           {13, kindU16},
	"domain-name":              {15, kindString},
	"swap-server":              {16, kindAddrs},
	"root-path":                {17, kindString},
	"extension-path":           {18, kindString},
	"ip-forward-enable":        {19, kindU8},
	"non-local-source-routing": {20, kindU8},
	"policy-filter":            {21, kindAddrs},
	"max-datagram-reassembly":  {22, kindU16},
	"default-ttl":              {23, kindU8},
	"mtu":                      {26, kindU16},
	"all-subnets-local":        {27, kindU8},
	"broadcast":                {28, kindAddrs},
	"router-discovery":         {31, kindU8},
	"router-solicitation":      {32, kindAddrs},
	"static-route":             {33, kindAddrs},
	"trailer-encapsulation":    {34, kindU8},
	"arp-timeout":              {35, kindU32},
	"ethernet-encap":           {36, kindU8},
	"tcp-ttl":                  {37, kindU8},
	"tcp-keepalive":            {38, kindU32},
	"nis-domain":               {40, kindString},
	"nis-server":               {41, kindAddrs},
	"ntp-server":               {42, kindAddrs},
	"vendor-encap":             {43, kindAuto},
	"netbios-ns":               {44, kindAddrs},
	"netbios-dd":               {45, kindAddrs},
	"netbios-nodetype":         {46, kindU8},
	"netbios-scope":            {47, kindString},
	"x-windows-fs":             {48, kindAddrs},
	"x-windows-dm":             {49, kindAddrs},
	"T1":                       {58, kindU32},
	"T2":                       {59, kindU32},
	"vendor-class":             {60, kindString},
	"nis+-domain":              {64, kindString},
	"nis+-server":              {65, kindAddrs},
	"tftp-server":              {66, kindString},
	"bootfile-name":            {67, kindString},
	"mobile-ip-home":           {68, kindAddrs},
	"smtp-server":              {69, kindAddrs},
	"pop3-server":              {70, kindAddrs},
	"nntp-server":              {71, kindAddrs},
	"irc-server":               {74, kindAddrs},
	"user-class":               {77, kindString},
	"client-arch":              {93, kindU16},
	"posix-timezone":           {100, kindString},
	"tzdb-timezone":            {101, kindString},
	"ipv6-only":                {108, kindU32},
	"domain-search":            {119, kindSearch},
	"sip-server":               {120, kindSIP},
	"classless-static-route":   {121, kindClassless},
	"vendor-id-encap":          {125, kindAuto},
	"tftp-server-address":      {150, kindAddrs},
	"server-ip-address":        {siaddrOption, kindAddrs},
}

// byCode is dnsmasqOptions by code, for options named by number: dnsmasq
// reads the value of a known code as it reads its named form.
var byCode = func() map[uint8]kind {
	m := map[uint8]kind{}
	for _, d := range dnsmasqOptions {
		m[d.code] = d.kind
	}
	return m
}()

// encode turns an extra option into its code and payload. A name dnsmasq
// does not know, or a value that does not read as the option's kind, is an
// error: the option is left out (dnsmasq would refuse to start). An empty
// value is a nil payload: the option is not sent at all (Neutron allows it
// for router and classless-static-route). A blank router leaves the
// subnet's classless routes (option 121) as they are, default route
// included, as dnsmasq does with Neutron's options.
func (o Option) encode() (uint8, []byte, error) {
	name := strings.TrimPrefix(o.Name, "option:")
	var def optionDef
	if n, err := strconv.ParseUint(name, 10, 8); err == nil {
		if n == 0 {
			return 0, nil, fmt.Errorf("option code 0 is padding")
		}
		def = optionDef{uint8(n), byCode[uint8(n)]}
	} else if d, ok := dnsmasqOptions[name]; ok {
		def = d
	} else {
		return 0, nil, fmt.Errorf("unknown DHCP option %q", o.Name)
	}
	value := strings.TrimSpace(o.Value)
	if value == "" {
		return def.code, nil, nil
	}
	data, err := encodeValue(def.kind, value)
	if err != nil {
		return 0, nil, fmt.Errorf("option %s: %w", o.Name, err)
	}
	if len(data) > 255 {
		return 0, nil, fmt.Errorf("option %s: value longer than 255 bytes", o.Name)
	}
	return def.code, data, nil
}

func encodeValue(k kind, value string) ([]byte, error) {
	switch k {
	case kindAddrs:
		return addrList(value)
	case kindString:
		return []byte(unquote(value)), nil
	case kindU8, kindU16, kindU32:
		size := map[kind]int{kindU8: 1, kindU16: 2, kindU32: 4}[k]
		n, err := strconv.ParseUint(value, 10, 8*size)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %d-byte number", value, size)
		}
		return bigEndian(n, size), nil
	case kindSearch:
		var names []string
		for _, d := range strings.Split(value, ",") {
			names = append(names, strings.TrimSuffix(strings.TrimSpace(d), "."))
		}
		return (&rfc1035label.Labels{Labels: names}).ToBytes(), nil
	case kindClassless:
		return classlessRoutes(value)
	case kindSIP:
		addrs, err := addrList(value)
		if err != nil {
			return nil, err
		}
		return append([]byte{1}, addrs...), nil
	}
	// Like dnsmasq for an option it has no type for: addresses if every
	// part is one, hex bytes if written so, a number in as few bytes as
	// hold it, and the text otherwise.
	if addrs, err := addrList(value); err == nil {
		return addrs, nil
	}
	if b, err := hex.DecodeString(strings.ReplaceAll(value, ":", "")); err == nil && strings.Contains(value, ":") {
		return b, nil
	}
	if n, err := strconv.ParseUint(value, 10, 32); err == nil {
		switch {
		case n <= 0xff:
			return bigEndian(n, 1), nil
		case n <= 0xffff:
			return bigEndian(n, 2), nil
		}
		return bigEndian(n, 4), nil
	}
	return []byte(unquote(value)), nil
}

func addrList(value string) ([]byte, error) {
	var out []byte
	for _, part := range strings.Split(value, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(part))
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", part)
		}
		out = append(out, a.AsSlice()...)
	}
	return out, nil
}

// classlessRoutes reads "dst/len,gateway[,dst/len,gateway…]" (dnsmasq's
// form of option 121) into RFC 3442's encoding.
func classlessRoutes(value string) ([]byte, error) {
	parts := strings.Split(value, ",")
	if len(parts)%2 != 0 {
		return nil, fmt.Errorf("%q is not destination/length,gateway pairs", value)
	}
	var out []byte
	for i := 0; i < len(parts); i += 2 {
		dst, err := netip.ParsePrefix(strings.TrimSpace(parts[i]))
		if err != nil || !dst.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 prefix", parts[i])
		}
		gw, err := netip.ParseAddr(strings.TrimSpace(parts[i+1]))
		if err != nil || !gw.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", parts[i+1])
		}
		dst = dst.Masked()
		a := dst.Addr().As4()
		out = append(out, byte(dst.Bits()))
		out = append(out, a[:(dst.Bits()+7)/8]...)
		out = append(out, gw.AsSlice()...)
	}
	return out, nil
}

func bigEndian(n uint64, size int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b[8-size:]
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// extraOptions applies a host's extra options to a reply, after the
// subnet's: a port's option replaces the subnet's, as dnsmasq's tagged
// options take precedence over its untagged ones. server-ip-address sets
// the header's siaddr; bootfile-name and tftp-server also fill the
// header's file and sname, where older PXE clients look for them.
func extraOptions(reply *dhcpv4.DHCPv4, opts []Option) {
	for _, o := range opts {
		code, data, err := o.encode()
		if err != nil {
			continue
		}
		switch {
		case code == siaddrOption:
			if len(data) >= 4 {
				reply.ServerIPAddr = data[:4]
			}
			continue
		case data == nil:
			reply.Options.Del(dhcpv4.GenericOptionCode(code))
			continue
		case code == dhcpv4.OptionBootfileName.Code() && len(data) < 128:
			reply.BootFileName = string(data)
		case code == dhcpv4.OptionTFTPServerName.Code() && len(data) < 64:
			reply.ServerHostName = string(data)
		}
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(code), data))
	}
}
