"""ExampleConnector with timing of its worker-side save/load (logged per step)."""
import time

from vllm.distributed.kv_transfer.kv_connector.v1.example_connector import ExampleConnector
from vllm.logger import init_logger

logger = init_logger("vllm.timed_connector")


class TimedExampleConnector(ExampleConnector):
    _save_acc = 0.0
    _save_n = 0

    def start_load_kv(self, forward_context, **kwargs):
        t0 = time.perf_counter()
        super().start_load_kv(forward_context, **kwargs)
        md = self._get_connector_metadata()
        n = sum(len(r.slot_mapping) for r in md.requests if not r.is_store)
        if n:
            logger.info("TIMED load: %d tokens in %.2f ms", n, (time.perf_counter() - t0) * 1e3)

    def save_kv_layer(self, layer_name, kv_layer, attn_metadata, **kwargs):
        t0 = time.perf_counter()
        super().save_kv_layer(layer_name, kv_layer, attn_metadata, **kwargs)
        self._save_acc += time.perf_counter() - t0
        self._save_n += 1

    def wait_for_save(self):
        md = self._get_connector_metadata()
        n = sum(len(r.slot_mapping) for r in md.requests if r.is_store)
        if n:
            logger.info("TIMED save: %d tokens, %d layer calls, %.2f ms", n, self._save_n,
                        self._save_acc * 1e3)
        self._save_acc, self._save_n = 0.0, 0
