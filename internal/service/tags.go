package service

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// maxTagLen is Neutron's MAX_TAG_LEN.
const maxTagLen = 255

// tagTarget is one collection whose resources take tags (Neutron's
// standard-attr-tag).
type tagTarget struct {
	kind store.Kind
	// load reads id if the caller may see it: its standard attributes, and
	// how to write the resource back once they changed.
	load func(ctx context.Context, r store.Reader, id string) (std *model.Standard, save func(store.Txn) error, err error)
}

func tagTargetOf[T any, P standardPtr[T]](kind store.Kind, load func(context.Context, store.Reader, string) (T, error)) tagTarget {
	return tagTarget{kind: kind, load: func(ctx context.Context, r store.Reader, id string) (*model.Standard, func(store.Txn) error, error) {
		v, err := load(ctx, r, id)
		if err != nil {
			return nil, nil, err
		}
		return P(&v).StandardAttrs(), func(tx store.Txn) error { return tx.Put(kind, id, v) }, nil
	}}
}

// tagTargets are the collections nsnet has of those Neutron tags, by their
// URL path.
var tagTargets = map[string]tagTarget{
	"networks": tagTargetOf(store.Networks, func(ctx context.Context, r store.Reader, id string) (model.Network, error) {
		n, _, err := loadNetwork(ctx, r, id)
		return n, err
	}),
	"subnets":         tagTargetOf(store.Subnets, loadSubnet),
	"ports":           tagTargetOf(store.Ports, loadPort),
	"routers":         tagTargetOf(store.Routers, loadRouter),
	"floatingips":     tagTargetOf(store.FloatingIPs, loadFloatingIP),
	"security-groups": tagTargetOf(store.SecurityGroups, loadGroup),
	"trunks":          tagTargetOf(store.Trunks, loadTrunk),
	"subnetpools": tagTargetOf(store.SubnetPools, func(ctx context.Context, r store.Reader, id string) (model.SubnetPool, error) {
		sp, _, err := loadSubnetPool(ctx, r, id)
		return sp, err
	}),
	"policies": tagTargetOf(store.QosPolicies, func(ctx context.Context, r store.Reader, id string) (model.QosPolicy, error) {
		p, _, err := loadQosPolicy(ctx, r, id)
		return p, err
	}),
}

// TagCollections are the URL paths of the collections whose resources
// take tags.
func TagCollections() []string {
	out := make([]string, 0, len(tagTargets))
	for c := range tagTargets {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// loadTagged reads collection/id for the caller. Who may see a resource
// may read and change its tags: Neutron (Zed) enforces no policy of its
// own on tags; its tag plugin reads the parent through the query that
// applies visibility (its own project's, or shared with it by RBAC), and
// answers TagResourceNotFound for one it cannot see. So a member may tag
// an admin's shared QoS policy or another project's shared network, as
// neutron-tempest-plugin's TagQosPolicyTestJSON does. Only a caller with a
// writing role changes them (nsnet's reader role reads).
func loadTagged(ctx context.Context, r store.Reader, collection, id string) (*model.Standard, func(store.Txn) error, error) {
	std, save, err := tagTargets[collection].load(ctx, r, id)
	if e := AsError(err); e != nil && e.Status == http.StatusNotFound {
		// Neutron names the collection as its plugin does: security_groups.
		return nil, nil, typed(http.StatusNotFound, "TagResourceNotFound", "Resource %s %s could not be found.",
			strings.ReplaceAll(collection, "-", "_"), id)
	}
	return std, save, err
}

// Tags lists the tags of collection/id.
func (s *Service) Tags(ctx context.Context, collection, id string) ([]string, error) {
	var tags []string
	err := s.store.View(ctx, func(r store.Reader) error {
		std, _, err := loadTagged(ctx, r, collection, id)
		if err == nil {
			tags = slices.Clone(std.Tags)
		}
		return err
	})
	return tags, err
}

// HasTag answers Neutron's GET …/tags/{tag}: nil when collection/id has
// tag, TagNotFound otherwise.
func (s *Service) HasTag(ctx context.Context, collection, id, tag string) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	tags, err := s.Tags(ctx, collection, id)
	if err != nil {
		return err
	}
	if !slices.Contains(tags, tag) {
		return tagNotFound(tag)
	}
	return nil
}

// ReplaceTags sets every tag of collection/id (PUT …/tags).
func (s *Service) ReplaceTags(ctx context.Context, collection, id string, tags []string) ([]string, int64, error) {
	for i, t := range tags {
		if err := checkTag(t); err != nil {
			return nil, 0, err
		}
		if slices.Contains(tags[:i], t) {
			return nil, 0, invalidInput("Duplicate items in the list: '%s'", t)
		}
	}
	return s.changeTags(ctx, collection, id, func([]string) ([]string, error) { return slices.Clone(tags), nil })
}

// AddTag adds one tag (PUT …/tags/{tag}); adding one it has changes nothing.
func (s *Service) AddTag(ctx context.Context, collection, id, tag string) (int64, error) {
	if err := checkTag(tag); err != nil {
		return 0, err
	}
	_, rev, err := s.changeTags(ctx, collection, id, func(old []string) ([]string, error) {
		if slices.Contains(old, tag) {
			return old, nil
		}
		return append(old, tag), nil
	})
	return rev, err
}

// RemoveTag removes one tag (DELETE …/tags/{tag}), TagNotFound if absent.
func (s *Service) RemoveTag(ctx context.Context, collection, id, tag string) (int64, error) {
	if err := checkTag(tag); err != nil {
		return 0, err
	}
	_, rev, err := s.changeTags(ctx, collection, id, func(old []string) ([]string, error) {
		i := slices.Index(old, tag)
		if i < 0 {
			return nil, tagNotFound(tag)
		}
		return slices.Delete(old, i, i+1), nil
	})
	return rev, err
}

// RemoveTags removes every tag (DELETE …/tags).
func (s *Service) RemoveTags(ctx context.Context, collection, id string) (int64, error) {
	_, rev, err := s.changeTags(ctx, collection, id, func([]string) ([]string, error) { return []string{}, nil })
	return rev, err
}

// changeTags rewrites the tags of collection/id in a transaction; a change
// bumps the resource's revision_number, as in Neutron.
func (s *Service) changeTags(ctx context.Context, collection, id string, change func([]string) ([]string, error)) ([]string, int64, error) {
	target := tagTargets[collection]
	var tags []string
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		std, save, err := loadTagged(ctx, tx, collection, id)
		if err != nil {
			return err
		}
		if !caller(ctx).CanWrite() {
			return denied("update_" + string(target.kind) + "_tags")
		}
		old := slices.Clone(std.Tags)
		if tags, err = change(slices.Clone(old)); err != nil {
			return err
		}
		if slices.Equal(old, tags) {
			return nil
		}
		std.Tags = tags
		std.Touch(s.now())
		return save(tx)
	})
	return tags, rev, err
}

// checkTag is Neutron's validate_tag: a string of at most 255 characters.
func checkTag(tag string) error {
	if err := tagLength(tag); err != nil {
		return invalidInput("%s", err)
	}
	return nil
}

func tagLength(tag string) error {
	if n := len([]rune(tag)); n > maxTagLen {
		return fmt.Errorf("'%s' exceeds maximum length of %d", tag, maxTagLen)
	}
	return nil
}

func tagNotFound(tag string) *Error {
	return typed(http.StatusNotFound, "TagNotFound", "Tag %s could not be found.", tag)
}
