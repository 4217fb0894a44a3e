// Package handwritten is a heartbeat publisher written by hand, without the
// library: process values from gopsutil, the documented JSON built from a
// map with encoding/json, and one go-redis pipeline of PUBLISH and SET per
// heartbeat. It is the baseline the library's cost is measured against,
// in process (BenchmarkHeartbeatCycleBaseline) and as a program of its own
// (internal/tools/pubcost/cmd/handwritten).
package handwritten

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Fields are the three service fields both publishers send: a queue size,
// an API status and the last successful operation.
type Fields struct {
	QueueSize func() int
	APIStatus func() string
	LastOK    func() time.Time
}

// Publisher sends one service instance's heartbeats, one per Beat.
type Publisher struct {
	client   redis.UniversalClient
	proc     *process.Process
	service  string
	id       string
	interval time.Duration
	fields   Fields
	channel  string
	key      string
	started  time.Time
	count    int64
	prevCPU  float64
	prevAt   time.Time
}

// New returns a Publisher of service's heartbeats on client.
func New(client redis.UniversalClient, service string, interval time.Duration, f Fields) (*Publisher, error) {
	proc, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		return nil, err
	}
	created, err := proc.CreateTime()
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	p := &Publisher{
		client: client, proc: proc, service: service, id: id, interval: interval, fields: f,
		channel: "heartbeat:service:" + service,
		key:     "heartbeat:instance:" + service + ":" + id,
		started: time.UnixMilli(created),
	}
	p.prevAt = p.started
	return p, nil
}

// Beat sends one heartbeat.
func (p *Publisher) Beat(ctx context.Context) error {
	mem, err := p.proc.MemoryInfo()
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	times, err := p.proc.Times()
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	now := time.Now()
	cpu := times.User + times.System
	p.count++
	payload, err := json.Marshal(map[string]any{
		"service_name":              p.service,
		"instance_id":               p.id,
		"timestamp":                 now.UTC().Format(wire.TimestampLayout),
		"uptime_seconds":            float64(int(now.Sub(p.started).Seconds()*10)) / 10,
		"heartbeat_count":           p.count,
		"memory_usage_mb":           float64(int(float64(mem.RSS)/(1<<20)*10)) / 10,
		"cpu_usage_percent":         float64(int((cpu-p.prevCPU)/now.Sub(p.prevAt).Seconds()*1000)) / 10,
		"interval_seconds":          p.interval.Seconds(),
		"status":                    "running",
		"queue_size":                p.fields.QueueSize(),
		"api_status":                p.fields.APIStatus(),
		"last_successful_operation": p.fields.LastOK().UTC().Format(wire.TimestampLayout),
	})
	if err != nil {
		return err
	}
	p.prevCPU, p.prevAt = cpu, now
	_, err = p.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Publish(ctx, p.channel, payload)
		pipe.Set(ctx, p.key, payload, 3*p.interval)
		return nil
	})
	return err
}
