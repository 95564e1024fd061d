package service

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

var instanceAttrs = append([]attr[model.Instance]{
	{name: "name", post: true, required: true, set: func(in *model.Instance, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if err := model.ValidateInstanceName(v); err != nil {
			return err
		}
		in.Name = v
		return nil
	}},
	stringAttr("description", true, true, func(in *model.Instance) *string { return &in.Description }),
	// host is where the instance runs, for its life: named on create
	// (an admin's choice, as Nova's forced host is), else scheduled.
	{name: "host", post: true, set: func(in *model.Instance, raw json.RawMessage) error {
		v, err := parseString(raw, maxHostLen)
		in.Host = v
		return err
	}},
	{name: "user_data", post: true, put: true, set: func(in *model.Instance, raw json.RawMessage) error {
		v, err := parseString(raw, maxUserData)
		in.UserData = v
		return err
	}},
	{name: "meta", post: true, put: true, set: func(in *model.Instance, raw json.RawMessage) error {
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return fmt.Errorf("'%s' is not an object of strings", shown(raw))
		}
		for k, v := range m {
			if k == "" || len(k) > maxNameLen || len(v) > maxNameLen {
				return fmt.Errorf("meta keys must be 1 to %d characters and values at most %d", maxNameLen, maxNameLen)
			}
		}
		in.Meta = m
		return nil
	}},
	{name: "ssh_keys", post: true, put: true, set: func(in *model.Instance, raw json.RawMessage) error {
		keys, err := parseStringList(raw, func(k string) error {
			if k == "" || len(k) > maxSSHKey || strings.ContainsAny(k, "\r\n") {
				return fmt.Errorf("'%s' is not one line of at most %d characters", k, maxSSHKey)
			}
			return nil
		})
		in.SSHKeys = keys
		return err
	}},
}, projectAttrs(func(in *model.Instance) *string { return &in.ProjectID })...)

// Limits of the metadata fields: Nova's 64 KiB of user data, and an
// OpenSSH public key line with room to spare.
const (
	maxUserData = 65535
	maxSSHKey   = 16384
)

// CreateInstance creates an instance: a named network namespace on the host.
// Instance names are unique within a project; the namespace name, chosen
// here once and stored, is unique on the host (see model.InstanceNetnsName).
func (s *Service) CreateInstance(ctx context.Context, in Attrs) (Result[model.Instance], error) {
	inst := model.Instance{ID: newID()}
	if err := mustCreate(ctx, "create_instance"); err != nil {
		return Result[model.Instance]{}, err
	}
	if err := decode(&inst, instanceAttrs, in, opCreate); err != nil {
		return Result[model.Instance]{}, err
	}
	project, err := owner(ctx, "create_instance", inst.ProjectID)
	if err != nil {
		return Result[model.Instance]{}, err
	}
	inst.ProjectID = project
	if inst.Host != "" && !caller(ctx).IsAdmin() {
		return Result[model.Instance]{}, denied("create_instance", "create_instance:host")
	}
	requested := inst.Host
	inst.Touch(s.now())
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		// The requested host, checked, or the least loaded alive
		// compute host (hosts.go): chosen again on a retry, from the
		// retry's snapshot.
		if err := prefetchInstanceCreate(tx, &inst, requested); err != nil {
			return err
		}
		host, err := s.scheduleInstance(tx, requested)
		if err != nil {
			return err
		}
		inst := inst
		inst.Host = host
		// Named with the prefix of the host whose agent makes it.
		prefix, err := s.netnsPrefixOf(tx, host)
		if err != nil {
			return err
		}
		inst.Netns = model.InstanceNetnsName(prefix, auth.AdminProjectID, project, inst.Name)
		// The indexes of names and namespaces (index.go), not a walk
		// of every instance.
		if id, err := instanceHolding(tx, instNameKey(inst.ProjectID, inst.Name)); err != nil || id != "" {
			return cmp.Or[error](err, conflict("InstanceNameInUse", "Instance name %s is already in use.", inst.Name))
		}
		if id, err := instanceHolding(tx, instNetnsKey(inst.Netns)); err != nil || id != "" {
			// Only ids that netnsSafe had to change can meet here.
			return cmp.Or[error](err, conflict("InstanceNameInUse", "Instance name %s is already in use (namespace %s).", inst.Name, inst.Netns))
		}
		return tx.Put(store.Instances, inst.ID, inst)
	})
	if err != nil {
		return Result[model.Instance]{}, err
	}
	return s.instanceResult(ctx, inst.ID, rev)
}

// prefetchInstanceCreate reads, in one round trip on etcd, what an
// instance create reads: the hosts to schedule on (and the requested
// one's agent) and their counts of instances, the index of the
// instance's name, and its id (free).
func prefetchInstanceCreate(r store.Reader, inst *model.Instance, requested string) error {
	wants := []store.Want{
		store.Every(store.Hosts),
		// The hosts' counts of instances, for the least loaded one.
		store.Span(store.Indexes, idxInstHost, prefixEnd(idxInstHost)),
		store.Record(store.Indexes, instNameKey(inst.ProjectID, inst.Name)),
		store.Record(store.Instances, inst.ID),
	}
	if requested != "" {
		wants = append(wants, store.Record(store.Agents, AgentID(requested, model.AgentTypeLinuxBridge)))
	}
	return store.Prefetch(r, wants...)
}

// UpdateInstance applies the attributes of a PUT. The name is fixed: it is
// the namespace that processes inside the instance run in.
func (s *Service) UpdateInstance(ctx context.Context, id string, in Attrs) (Result[model.Instance], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		inst, err := loadInstance(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_instance", inst.ProjectID); err != nil {
			return err
		}
		if err := decode(&inst, instanceAttrs, in, opUpdate); err != nil {
			return err
		}
		inst.Touch(s.now())
		return tx.Put(store.Instances, id, inst)
	})
	if err != nil {
		return Result[model.Instance]{}, err
	}
	return s.instanceResult(ctx, id, rev)
}

// DeleteInstance deletes an instance that no port is plugged into.
func (s *Service) DeleteInstance(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		inst, err := loadInstance(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_instance", inst.ProjectID); err != nil {
			return err
		}
		ports, err := portsOfInstance(tx, id)
		if err != nil {
			return err
		}
		if len(ports) > 0 {
			ids := make([]string, len(ports))
			for i, p := range ports {
				ids[i] = p.ID
			}
			return conflict("InstanceInUse", "Instance %s still has ports plugged in (%s); delete them first.",
				inst.Name, strings.Join(ids, ", "))
		}
		return tx.Delete(store.Instances, id)
	})
}

// GetInstance returns one instance.
func (s *Service) GetInstance(ctx context.Context, id string) (model.Instance, error) {
	var inst model.Instance
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		inst, err = loadInstance(ctx, r, id)
		return err
	})
	s.renderInstance(&inst)
	return inst, err
}

// ListInstances returns the instances the caller may see.
func (s *Service) ListInstances(ctx context.Context) ([]model.Instance, error) {
	var out []model.Instance
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.Instance](r, store.Instances)
		for _, inst := range all {
			if canSee(ctx, inst.ProjectID) {
				s.renderInstance(&inst)
				out = append(out, inst)
			}
		}
		return err
	})
	return out, err
}

func (s *Service) instanceResult(ctx context.Context, id string, rev int64) (Result[model.Instance], error) {
	inst, err := s.GetInstance(ctx, id)
	return Result[model.Instance]{inst, rev}, err
}

func (s *Service) renderInstance(inst *model.Instance) {
	inst.TenantID = inst.ProjectID
	if inst.Meta == nil {
		inst.Meta = map[string]string{}
	}
	if inst.SSHKeys == nil {
		inst.SSHKeys = []string{}
	}
	inst.Netns = s.netnsOf(inst)
	inst.Status, inst.StatusReason = s.statusOf(store.Instances, inst.ID, inst.Host)
}

// netnsOf is the namespace of an instance: the stored name, or, for an
// instance made before names were stored, the name the agent derives.
func (s *Service) netnsOf(inst *model.Instance) string {
	if inst.Netns != "" {
		return inst.Netns
	}
	return s.netnsPrefix + inst.Name
}

func loadInstance(ctx context.Context, r store.Reader, id string) (model.Instance, error) {
	return load(ctx, r, store.Instances, "Instance", id, func(in *model.Instance) string { return in.ProjectID })
}
