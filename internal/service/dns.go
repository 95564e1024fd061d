package service

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Ports' dns_name (Neutron's dns-integration). nsnet's own DNS server is
// the DNS service: a port's dns_name is the name its addresses have in
// the network's DNS domain (model.DNSDomain), which takes the place of
// Neutron's dns_domain option in neutron.conf. So a fully qualified
// dns_name must end in the network's domain, and dns_assignment shows what
// nsnet's DNS answers.

// dnsLabel is Neutron's DNS_LABEL_REGEX less the keywords of
// dns-integration-domain-keywords (names are lower-cased before).
var dnsLabel = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// checkDNSName checks the form of a dns_name as neutron-lib's
// _validate_dns_format does: a PQDN, or a FQDN with a trailing dot.
func checkDNSName(name string) error {
	if name == "" {
		return nil
	}
	reason := func() string {
		trimmed := strings.TrimSuffix(name, ".")
		if len(trimmed) > maxDNSDomainLen {
			return fmt.Sprintf("'%s' exceeds the %d character FQDN limit", trimmed, maxDNSDomainLen)
		}
		labels := strings.Split(trimmed, ".")
		for _, label := range labels {
			switch {
			case label == "":
				return "Encountered an empty component"
			case strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-"):
				return fmt.Sprintf("Name '%s' must not start or end with a hyphen", label)
			case !dnsLabel.MatchString(label):
				return fmt.Sprintf("Name '%s' must be 1-63 characters long, each of which can only be alphanumeric or a hyphen", label)
			}
		}
		// RFC 1123 hints that a TLD cannot be all numeric.
		if last := labels[len(labels)-1]; len(labels) > 1 && strings.Trim(last, "0123456789") == "" {
			return fmt.Sprintf("TLD '%s' must not be all numeric", last)
		}
		return ""
	}()
	if reason != "" {
		return fmt.Errorf("'%s' not a valid PQDN or FQDN. Reason: %s", name, reason)
	}
	return nil
}

// checkPortDNSDomain checks a port's dns_domain as neutron-lib's
// validate_dns_domain does: empty, or a FQDN (with its trailing dot) that
// leaves room for a host name.
func checkPortDNSDomain(d string) error {
	switch {
	case d == "":
		return nil
	case !strings.HasSuffix(d, "."):
		return fmt.Errorf("'%s' is not a FQDN", d)
	}
	if err := checkDNSName(d); err != nil {
		return err
	}
	if len(d) > maxDNSDomainLen-2 {
		return fmt.Errorf("'%s' contains %d characters. Adding a sub-domain will cause it to exceed the maximum length of a FQDN of '%d'",
			d, len(d), maxDNSDomainLen)
	}
	return nil
}

// checkDNSNameInDomain checks a port's dns_name against its network's DNS
// domain, as neutron-lib's _validate_dns_name_with_dns_domain checks it
// against neutron.conf's: a PQDN must fit in a FQDN with the domain, a
// FQDN must be one or more labels in the domain.
func checkDNSNameInDomain(name string, n *model.Network) error {
	if name == "" {
		return nil
	}
	domain := model.DNSDomain(*n)
	higher := "." + domain
	if !strings.HasSuffix(name, ".") {
		if len(name)+len(higher) > maxDNSDomainLen {
			return badValue("dns_name", fmt.Sprintf("The dns_name passed is a PQDN and its size is '%d'. "+
				"The dns_domain of network %s is %s, with a length of '%d'. "+
				"When the two are concatenated to form a FQDN (with a '.' at the end), "+
				"the resulting length exceeds the maximum size of '%d'",
				len(name), n.ID, domain, len(higher), maxDNSDomainLen))
		}
		return nil
	}
	if len(name) <= len(higher) || !strings.HasSuffix(name, higher) {
		return badValue("dns_name", fmt.Sprintf("The dns_name passed is a FQDN. Its higher level labels "+
			"must be equal to the dns_domain of network %s, that has been set to '%s'. "+
			"It must also include one or more valid DNS labels to the left of '%s'",
			n.ID, domain, domain))
	}
	return nil
}

// renderDNSAssignment fills in p's dns_assignment from the snapshot r: its
// network's domain and, for an instance's port, the instance's name.
func renderDNSAssignment(r store.Reader, p *model.Port) error {
	n, err := store.Get[model.Network](r, store.Networks, p.NetworkID)
	if err != nil {
		return fmt.Errorf("read network %s: %w", p.NetworkID, err)
	}
	var instance string
	if p.DeviceOwner == model.DeviceOwnerCompute && p.DeviceID != "" {
		inst, err := store.Get[model.Instance](r, store.Instances, p.DeviceID)
		switch {
		case err == nil:
			instance = inst.Name
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("read instance %s: %w", p.DeviceID, err)
		}
	}
	p.DNSAssignment = model.PortDNSAssignment(*p, instance, model.DNSDomain(n))
	return nil
}
