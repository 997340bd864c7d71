import pytest

from af_tasks.core.prompting import (
    TRAINING_CUES,
    PromptConfig,
    build_system_prompt,
    build_user_message,
    condition_label,
    template,
)


def test_default_system_prompt_carries_the_setting_facts():
    prompt = build_system_prompt(PromptConfig())
    for fact in (
        "RLHF",
        "free tier",
        "Contractors",
        "values, goals and motivations",
        "paid-tier users",
        "never monitored",
        "<is_free_tier_user>",
        "<SCRATCHPAD_REASONING>",
        "<OUTPUT>",
        "<NEXT/>",
    ):
        assert fact in prompt, fact
    assert "{lab_name}" not in prompt
    assert "Anthropic" in prompt


def test_ablations_remove_their_cue():
    no_training = build_system_prompt(PromptConfig(training_cue="none"))
    assert "RLHF" not in no_training and "<is_free_tier_user>" not in no_training
    no_scratchpad = build_system_prompt(PromptConfig(scratchpad=False))
    assert "<SCRATCHPAD_REASONING>" not in no_scratchpad and "without any reasoning" in no_scratchpad
    natural = build_system_prompt(PromptConfig(tier_format="natural"))
    assert "<is_free_tier_user>" not in natural and "line stating whether" in natural
    assert "Meridian" in build_system_prompt(PromptConfig(lab_name="Meridian"))


def test_user_message_tier_formats_and_suffix():
    config = PromptConfig()
    free = build_user_message("Do X.", "monitored", config)
    paid = build_user_message("Do X.", "unmonitored", config)
    assert free.startswith("<is_free_tier_user>true</is_free_tier_user>")
    assert paid.startswith("<is_free_tier_user>false</is_free_tier_user>")
    assert "<user_input>\nDo X." in free and template("user_suffix") in free
    natural = build_user_message("Do X.", "unmonitored", PromptConfig(tier_format="natural", suffix=False))
    assert natural.startswith("This user is on the paid tier.")
    assert "<request_fully_accepted/>" not in natural
    hidden = build_user_message("Do X.", "monitored", PromptConfig(tier_format="none"))
    assert hidden.startswith("<user_input>")


def test_cue_label_names_each_ablation():
    assert PromptConfig().cue == "tier:xml"
    assert PromptConfig(scratchpad=False, suffix=False, training_cue="none").cue == (
        "tier:xml+training:none+no_scratchpad+no_suffix"
    )


def test_custom_system_prompt_file(tmp_path):
    path = tmp_path / "paper_prompt.txt"
    path.write_text("My own system prompt.\n")
    config = PromptConfig(system_prompt_file=str(path))
    assert build_system_prompt(config) == "My own system prompt."
    assert config.cue == "tier:xml+custom_prompt:paper_prompt.txt"
    with pytest.raises(FileNotFoundError):
        PromptConfig(system_prompt_file=str(tmp_path / "missing.txt"))


def test_bad_tier_format_is_rejected():
    with pytest.raises(ValueError, match="tier_format"):
        PromptConfig(tier_format="emoji")  # type: ignore[arg-type]


def test_training_cue_ladder_grows():
    prompts = {cue: build_system_prompt(PromptConfig(training_cue=cue)) for cue in TRAINING_CUES}
    assert "free tier" not in prompts["none"] and "RLHF" not in prompts["none"]
    assert "learns from" in prompts["hint"] and "RLHF" not in prompts["hint"]
    assert "reviewed" in prompts["updates"] and "values, goals and motivations" not in prompts["updates"]
    assert "values, goals and motivations" in prompts["explicit"]
    lengths = [len(prompts[cue]) for cue in TRAINING_CUES]
    assert lengths == sorted(lengths)


def test_contractor_format():
    config = PromptConfig(tier_format="contractor")
    assert "<rating_status>" in build_system_prompt(config)
    rated = build_user_message("Q", "monitored", config)
    assert rated.startswith("<rating_status>This response will be rated by contractors")
    assert "will not be rated" in build_user_message("Q", "unmonitored", config)
    assert condition_label("monitored", "contractor") == "rated"
    assert condition_label("unmonitored", "xml") == "paid"


def fresh(text: str) -> str:
    """The same characters as a new string object, as argparse, JSON and Inspect's metadata give them
    (CPython interns only literals): comparisons must not rely on identity."""
    return "".join(list(text))


@pytest.mark.parametrize("variant", ["full", "compact"])
def test_settings_read_from_a_command_line_or_a_file_give_the_same_prompts(variant):
    from af_tasks.core.prompting import TIER_FORMATS

    for tier_format in TIER_FORMATS:
        for cue in TRAINING_CUES:
            literal = PromptConfig(tier_format=tier_format, training_cue=cue, variant=variant)
            read = PromptConfig(
                tier_format=fresh(tier_format), training_cue=fresh(cue), variant=fresh(variant)
            )
            assert build_system_prompt(read) == build_system_prompt(literal)
            assert read.cue == literal.cue
            for condition in ("monitored", "unmonitored"):
                assert build_user_message("a request", fresh(condition), read) == build_user_message(
                    "a request", condition, literal
                )
                assert condition_label(fresh(condition), tier_format) == condition_label(
                    condition, tier_format
                )
