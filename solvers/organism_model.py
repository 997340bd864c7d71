"""The ``organism/`` Inspect model provider: the fast generation engine behind Inspect's model API.

``--model organism/<model dir | organism dir | hub id>`` (``organism//abs/dir`` for absolute paths, as
``hf/``). Llama-family models decode with continuous batching (``af_tasks.engine.server``): up to
``--max-connections`` requests decode at once, each leaves when it ends and a waiting one takes its slot,
greedy and sampled alike (each sampled request with its own seeded stream). Other models: concurrent
requests with equal settings are batched into one engine call (``af_tasks.solvers.batcher``). Model args
(``-M``):

- ``device`` (default cuda if available, else cpu), ``dtype`` (``bfloat16`` / ``float32``, default bf16
  on CUDA, fp32 on CPU), ``adapter`` (an adapter dir for a base given as the model), ``merge`` (true:
  merge LoRA weights into the base);
- ``cache`` (``static`` on CUDA, ``dynamic`` on CPU), ``compile`` (torch.compile'd decode step with CUDA
  graphs; default on CUDA only);
- ``do_sample`` (false = greedy; temperature 0 is greedy too), ``batch_size`` (slots / largest batch,
  default ``--max-connections``), ``batch_window_ms`` (how long a request waits for others while the
  engine is idle, default 50).

Kept light: torch / transformers are imported when the model is created, not when Inspect loads the
registry.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from af_tasks.boundary import user_errors
from af_tasks.core.errors import SettingError
from af_tasks.core.task_args import fraction, whole
from af_tasks.solvers.batcher import RequestBatcher

DEFAULT_BATCH_WINDOW_MS = 50.0
DEFAULT_MAX_CONNECTIONS = 32
"""The default batch size (as ``hf/``)."""
DEFAULT_MAX_TOKENS = 2048
"""Inspect's default for local providers (``hf/`` uses the same)."""


def _flag(value: Any, name: str) -> bool | None:
    """``-M`` values arrive parsed (true/false) from the CLI or as given from Python."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise SettingError(f"model argument {name}={value!r}: must be true or false (-M {name}=...)")


class OrganismAPI(ModelAPI):
    """Loads the engine once per model instance (Inspect memoises instances per model + args)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        device: str | None = None,
        dtype: str | None = None,
        adapter: str | None = None,
        merge: bool = True,
        cache: str | None = None,
        compile: bool | None = None,
        do_sample: bool | None = None,
        batch_size: int | None = None,
        batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS,
        devices: Any = None,
        **unknown: Any,
    ):
        config = config or GenerateConfig()
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        with user_errors():  # Inspect prints these as one line naming the folder or argument
            # every -M argument is checked before the model loads
            if unknown:
                raise SettingError(
                    f"organism/: unknown model arguments {sorted(unknown)} (-M); known: device, devices, "
                    "dtype, adapter, merge, cache, compile, do_sample, batch_size, batch_window_ms"
                )
            if cache not in (None, "static", "dynamic"):
                raise SettingError(
                    f"model argument cache={cache!r}: must be static or dynamic (-M cache=...)"
                )
            batch = config.max_connections or DEFAULT_MAX_CONNECTIONS if batch_size is None else batch_size
            max_batch = whole("batch_size", batch, 1, flag="-M")
            window_ms = fraction("batch_window_ms", batch_window_ms, 0.0, 60_000.0, flag="-M")
            compile_, merge_ = _flag(compile, "compile"), bool(_flag(merge, "merge"))
            self.do_sample = _flag(do_sample, "do_sample")
            from af_tasks.core.devices import parse_devices
            from af_tasks.engine.generate import check_fits
            from af_tasks.engine.loading import check_device
            from af_tasks.solvers.replicas import ReplicaBatchers, load_replicas

            replica_devices = parse_devices(devices)
            if replica_devices and device is not None:
                raise SettingError("organism/: give model argument device or devices, not both (-M)")
            for each in replica_devices or [device]:
                check_device(each)
            self.engines = load_replicas(
                model_name,
                replica_devices or [device],
                adapter=adapter,
                dtype=dtype,
                cache=cache,
                compile=compile_,
                merge=merge_,
            )
            self.engine = self.engines[0]
            if config.max_tokens is not None:  # the eval's --max-tokens, before any sample starts
                check_fits(0, config.max_tokens, self.engine.context_window, model_name)
        window_s = window_ms / 1000
        batchers = [self._batcher(engine, max_batch, window_s) for engine in self.engines]
        self.batcher: Any = batchers[0] if not replica_devices else ReplicaBatchers(batchers)

    def _batcher(self, engine: Any, max_batch: int, window_s: float) -> Any:
        """Continuous batching over ``max_batch`` slots where the engine decodes in slots; else static
        batches of concurrent requests with equal settings (``RequestBatcher``)."""
        from af_tasks.core.devices import cuda_index
        from af_tasks.solvers.replicas import on_device

        if engine.slots:
            from af_tasks.engine.server import SlotServer
            from af_tasks.solvers.slot_batcher import SlotBatcher

            index = cuda_index(str(engine.device))
            return SlotBatcher(SlotServer(engine, max_batch, window_s=window_s, device_index=index))
        return RequestBatcher(on_device(engine, self._runner(engine)), max_batch=max_batch, window_s=window_s)

    @staticmethod
    def _runner(engine):
        """A batch of prompt ids through ``engine``, on a batcher's worker thread; each result carries
        its batch's size (logged)."""
        return lambda params, prompts: [(c, len(prompts)) for c in engine.generate_ids(prompts, params)]

    def check_prompt(self, input: list[ChatMessage], max_tokens: int, where: str) -> list[int]:
        """The conversation's prompt ids; refused (``ContextLimitError``) when they plus ``max_tokens``
        do not fit the model's context window. Tasks call it for every sample before the eval starts;
        ``generate`` sends the ids it returns on, so a prompt is tokenised once."""
        from af_tasks.engine.generate import check_fits

        [prompt] = self.engine.encode([_chat(input)])
        check_fits(len(prompt), max_tokens, self.engine.context_window, where)
        return prompt

    def sampling_params(self, config: GenerateConfig):
        """Inspect's GenerateConfig → the engine's: greedy when ``do_sample=false`` or temperature 0."""
        from af_tasks.engine.generate import SamplingParams

        greedy = self.do_sample is False or config.temperature == 0
        return SamplingParams(
            max_new_tokens=config.max_tokens or self.max_tokens(),
            greedy=greedy,
            temperature=None if greedy else config.temperature,
            top_p=None if greedy else config.top_p,
            top_k=None if greedy else config.top_k,
            seed=config.seed,
            stop=tuple(config.stop_seqs or ()),
        )

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise NotImplementedError("organism/ does not support tool calls (use hf/ or vllm/)")
        params = self.sampling_params(config)
        # later turns grow the prompt: refused here, as a sample error, before any token is generated
        prompt = self.check_prompt(input, params.max_new_tokens, self.model_name)
        completion, batch_size = await self.batcher.submit(params, prompt)
        return ModelOutput(
            model=self.model_name,
            choices=[
                ChatCompletionChoice(
                    message=ChatMessageAssistant(
                        content=completion.text, model=self.model_name, source="generate"
                    ),
                    stop_reason=completion.stop_reason,
                )
            ],
            usage=ModelUsage(
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                total_tokens=completion.input_tokens + completion.output_tokens,
            ),
            metadata={"batch_size": batch_size},
        )

    def max_tokens(self) -> int:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return DEFAULT_MAX_CONNECTIONS

    def collapse_user_messages(self) -> bool:
        return True  # chat templates often require alternating roles

    def close(self) -> None:
        self.batcher.close()
        self.engine = None  # type: ignore[assignment]
        self.engines = []


def _chat(input: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": message.role, "content": message.text} for message in input]


@modelapi(name="organism")
def organism() -> type[ModelAPI]:
    return OrganismAPI
