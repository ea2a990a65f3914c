"""Load a checkpoint folder with vLLM (CPU) and generate a few tokens from a contract prompt; prints JSON.

    VLLM_CPU_KVCACHE_SPACE=1 python tests/training/vllm_load.py CHECKPOINT_DIR
The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, as training/rollout.py runs it): by default
vllm.LLM spawns an engine-core process and a worker process, each importing vLLM again (~15 s more here) for a
load and 8 tokens. Run it as a subprocess all the same: the engine's state stays out of the test process.
"""

import json
import os
import sys

if __name__ == "__main__":
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # as training/rollout.py: no core binding in-process
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    from mental_r1.contract import build_prompt

    folder = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(folder)
    prompt = build_prompt(tok, "I cannot sleep and I feel empty.", "Does the poster suffer from depression?",
                          ["yes", "no"])
    llm = LLM(model=folder, enforce_eager=True, max_model_len=1024, max_num_seqs=4, seed=0)
    out = llm.generate([prompt], SamplingParams(max_tokens=8, temperature=0.85, top_p=0.95, ignore_eos=True))
    print(json.dumps({"n_tokens": len(out[0].outputs[0].token_ids)}))
