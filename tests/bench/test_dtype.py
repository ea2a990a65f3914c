from bench.dtype import matmul_gflops, service_prompts


def test_matmul_rate_is_measured_in_each_dtype():
    for dtype in ("float32", "bfloat16"):
        assert matmul_gflops(dtype, n=64, repeats=2) > 0


def test_prompts_are_the_services_over_every_dataset(data_dir, base_model_dir):
    prompts = service_prompts(data_dir, str(base_model_dir), 8)
    assert len(prompts) == 8 and len(set(prompts)) == 8
    assert all(p.rstrip().endswith("<stimulus>") for p in prompts)  # the service's assistant turn opening
    assert len({p.split("Question:")[-1].split("\n")[0] for p in prompts}) >= 6  # round-robin over datasets
