import dataclasses
import os

from bench.servers import ServerLimits
from mental_r1.engine import EngineLimits, cpu_threads_bind


def test_server_limits_are_the_services_engine_limits_and_bind_like_the_service():
    ours, service = ServerLimits(), EngineLimits()
    for f in dataclasses.fields(EngineLimits):  # one set of defaults: the benchmark runs the engine users run
        assert getattr(ours, f.name) == getattr(service, f.name), f.name
    assert ours.omp_threads_bind == cpu_threads_bind({}, os.sched_getaffinity(0))  # "0-1" on a 2-core machine
    assert ServerLimits(omp_threads_bind="nobind").omp_threads_bind == "nobind"
