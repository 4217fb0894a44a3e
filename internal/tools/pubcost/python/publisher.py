"""The original design's publisher, in its own shape: an asyncio task that
publishes a heartbeat every interval with redis-py and psutil, and three
service fields from data collectors. The Python side of the publisher cost
comparison (internal/tools/pubcost); Debian's python3-redis and
python3-psutil. It reads OTEL_EXPORTER_VALKEY_ENDPOINT and
HEARTBEAT_INTERVAL, and runs until SIGTERM or SIGINT."""

import asyncio
import json
import os
import signal
import time
import uuid
from datetime import datetime, timezone

import psutil
import redis.asyncio as redis


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HeartbeatPublisher:
    def __init__(self, service_name, client, interval):
        self.service_name = service_name
        self.instance_id = str(uuid.uuid4())
        self.client = client
        self.interval = interval
        self.process = psutil.Process()
        self.start_time = time.time()
        self.heartbeat_count = 0
        self.data_collectors = {}
        self.channel = "heartbeat:service:" + service_name
        self.key = "heartbeat:instance:%s:%s" % (service_name, self.instance_id)
        self.process.cpu_percent()

    def add_data_collector(self, name, collector):
        self.data_collectors[name] = collector

    async def publish(self):
        self.heartbeat_count += 1
        now = datetime.now(timezone.utc)
        message = {
            "service_name": self.service_name,
            "instance_id": self.instance_id,
            "timestamp": iso(now),
            "uptime_seconds": round(time.time() - self.start_time, 1),
            "heartbeat_count": self.heartbeat_count,
            "memory_usage_mb": round(self.process.memory_info().rss / (1 << 20), 1),
            "cpu_usage_percent": round(self.process.cpu_percent(), 1),
            "interval_seconds": self.interval,
            "status": "running",
        }
        for name, collector in self.data_collectors.items():
            value = collector()
            message[name] = iso(value) if isinstance(value, datetime) else value
        payload = json.dumps(message)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.publish(self.channel, payload)
            pipe.set(self.key, payload, px=int(3 * self.interval * 1000))
            await pipe.execute()

    async def run(self, stop):
        loop = asyncio.get_running_loop()
        due = loop.time()
        # Cancelling the task is not enough: redis-py may swallow the
        # cancellation when it lands in a command, so the loop also checks.
        while not stop.is_set():
            await self.publish()
            due += self.interval
            await asyncio.sleep(max(0, due - loop.time()))


def interval_from_env():
    return float(os.environ.get("HEARTBEAT_INTERVAL", "60"))


async def main():
    client = redis.from_url(os.environ["OTEL_EXPORTER_VALKEY_ENDPOINT"])
    publisher = HeartbeatPublisher("pubcost", client, interval_from_env())
    last_ok = datetime.now(timezone.utc)
    publisher.add_data_collector("queue_size", lambda: 1380)
    publisher.add_data_collector("api_status", lambda: "authenticated")
    publisher.add_data_collector("last_successful_operation", lambda: last_ok)
    stop = asyncio.Event()
    task = asyncio.ensure_future(publisher.run(stop))

    def shut_down():
        stop.set()
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shut_down)
    try:
        await task
    except asyncio.CancelledError:
        pass
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
