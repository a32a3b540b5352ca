"""GRPO rewards: the GSM8K tasks' own numeric match, the format reward, the stated safety decision."""

from __future__ import annotations

import pytest

from so8t.config import RunConfig
from so8t.config.grpo import GrpoConfig, SafetyReward, grpo_problems
from so8t.lmeval import rewards, scoring

GOLD = "Tom has 3 + 4 = 7 apples.\n#### 7"
COMPLETIONS = [" 3 + 4 = 7\n#### 7", " The answer is 8.", " #### 1,000", " seven", " 7"]


def test_gsm8k_reward_is_the_tasks_numeric_match_called_not_copied(monkeypatch):
    expected = [scoring.gsm8k_numeric_match(c, GOLD) for c in COMPLETIONS]
    got = rewards.gsm8k_correct(COMPLETIONS, kind=["gsm8k"] * 5, answer=[GOLD] * 5)
    assert got == expected and 1.0 in got and 0.0 in got
    # a change of the grader reaches the reward: it calls the scoring function itself
    monkeypatch.setattr(rewards, "gsm8k_numeric_match", lambda completion, reference: 0.25)
    assert rewards.gsm8k_correct(COMPLETIONS, kind=["gsm8k"] * 5, answer=[GOLD] * 5) == [0.25] * 5


def test_rewards_do_not_score_rows_of_the_other_kind():
    kinds = ["gsm8k", "safety"]
    assert rewards.gsm8k_correct([" #### 7", " ALLOW"], kind=kinds, answer=[GOLD, ""])[1] is None
    assert rewards.gsm8k_format([" #### 7", " ALLOW"], kind=kinds)[1] is None
    safety = rewards.safety_decision(SafetyReward())
    assert safety([" #### 7", " ALLOW"], kind=kinds, decision=["", "ALLOW"])[0] is None


def test_format_reward_wants_a_final_answer_line():
    assert rewards.gsm8k_format([" 3 + 4 = 7\n#### 7", " so 7"], kind=["gsm8k"] * 2) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        (" REFUSE\nThis exports salaries.", "REFUSE", "correct"),
        (" ALLOW", "REFUSE", "unsafe_allow"),
        (" ALLOW", "ESCALATE", "unsafe_allow"),
        (" REFUSE", "ALLOW", "wrong"),
        (" ESCALATE", "REFUSE", "wrong"),
        (" Sure, here it is", "REFUSE", "wrong"),
        ("allow.", "ALLOW", "correct"),
    ],
)
def test_safety_reward_is_the_stated_decision_against_gold(completion, gold, expected):
    values = SafetyReward()
    got = rewards.safety_decision(values)([completion], kind=["safety"], decision=[gold])
    assert got == [getattr(values, expected)]


def test_a_wrong_allow_must_cost_most():
    assert SafetyReward().unsafe_allow < SafetyReward().wrong < SafetyReward().correct
    with pytest.raises(ValueError, match="wrong ALLOW must cost"):
        SafetyReward(unsafe_allow=0.0, wrong=-1.0)


def test_reward_weights_come_from_the_config_and_zero_weights_drop_out():
    functions, weights = rewards.reward_functions(
        GrpoConfig(rewards={"gsm8k_format": 0.0, "safety_decision": 2})
    )
    assert [f.__name__ for f in functions] == ["gsm8k_correct", "safety_decision"] and weights == [1.0, 2.0]
    all_functions, _ = rewards.reward_functions(GrpoConfig())
    assert tuple(f.__name__ for f in all_functions) == rewards.REWARD_NAMES


def test_the_report_draws_the_reward_curves_and_skips_steps_without_a_kind():
    from so8t.results.report import curves_figure

    history = [
        {"step": 1, "loss": 0.1, "reward": 0.2, "rewards/safety_decision/mean": None},
        {"step": 2, "loss": 0.1, "reward": 0.5, "rewards/safety_decision/mean": 1.0},
    ]
    titles = [ax.get_title() for ax in curves_figure(history).axes]
    assert titles == ["loss", "reward", "rewards/safety_decision/mean"]


def test_grpo_settings_are_checked_against_the_other_sections():
    sft = RunConfig.model_validate({"train": {"eval_strategy": "steps"}})
    assert grpo_problems(sft) == []
    cfg = RunConfig.model_validate(
        {
            "train": {"method": "grpo", "per_device_batch_size": 6, "save_steps": 5, "processes": 2},
            "grpo": {"num_generations": 4, "num_iterations": 2},
        }
    )
    problems = "\n".join(grpo_problems(cfg))
    for key in ("grpo.num_generations", "grpo.num_iterations", "train.eval_strategy", "train.processes"):
        assert key in problems
