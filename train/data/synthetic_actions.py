"""The action library of the synthetic set: the 14 parametric actions (`BASE_ACTIONS`), each
animating one or two Rigs over action time 0..1 with the sample's Style (amplitude, tempo,
phase), and the smooth envelopes and pulses they are built from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mksgn.train.data.synthetic_body import HEAD, LEFT, RIGHT, TRUNK, Rig, rot_x, rot_y


def smoothstep(start: float, end: float, u: np.ndarray) -> np.ndarray:
    """0 before `start`, 1 after `end`, a smooth cubic in between."""
    s = np.clip((u - start) / (end - start), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def envelope(u: np.ndarray, rise: tuple[float, float], fall: tuple[float, float]) -> np.ndarray:
    """Rise smoothly over `rise`, hold at 1, fall over `fall` (all in action time 0..1)."""
    return smoothstep(*rise, u) * (1.0 - smoothstep(*fall, u))


def pulse(u: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth bump of height 1 at `centre`, zero beyond ±width."""
    s = np.clip(np.abs(u - centre) / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * s))


@dataclass(frozen=True)
class Style:
    """Per-sample variation of an action, each (S, 1): amplitude, tempo, oscillation phase."""

    amplitude: np.ndarray
    tempo: np.ndarray
    phase: np.ndarray

    def wave(self, u: np.ndarray, cycles: float) -> np.ndarray:
        """A sine with `cycles` periods over the action (× the sample's tempo), random phase."""
        return np.sin(2 * np.pi * cycles * self.tempo * u + self.phase)


Animate = Callable[[list[Rig], np.ndarray, Style], None]


@dataclass(frozen=True)
class Action:
    """A parametric action: how to animate its bodies and how far apart two actors start."""

    name: str
    animate: Animate
    bodies: int = 1
    partner_distance: tuple[float, float] = (0.0, 0.0)


# --- single-actor actions --------------------------------------------------------------------
def _wave(side: int) -> Animate:
    def animate(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
        up = envelope(u, (0.05, 0.25), (0.78, 0.95))
        rigs[0].arm(
            side,
            flex=0.3 * up,
            abduct=1.35 * up * style.amplitude,
            elbow_up=up * (1.45 + 0.4 * style.wave(u, 3.0)),
        )

    return animate


def _raise_arm(side: int) -> Animate:
    def animate(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
        up = envelope(u, (0.08, 0.4), (0.68, 0.95))
        rigs[0].arm(side, flex=2.6 * up * style.amplitude, abduct=0.15 * up, elbow=0.15 * up)

    return animate


def _squat(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    down = envelope(u, (0.1, 0.42), (0.6, 0.92)) * style.amplitude
    drop = 0.42 * down
    for side in (LEFT, RIGHT):
        rigs[0].leg_drop(side, drop)
        rigs[0].arm(side, flex=1.3 * down)
    rigs[0].lean(0.55 * down)
    rigs[0].root_shift[..., 1] -= drop


def _jump(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    crouch = 0.2 * pulse(u, 0.3, 0.14) + 0.14 * pulse(u, 0.7, 0.1)
    flight = 0.22 * style.amplitude * pulse(u, 0.5, 0.1)
    for side in (LEFT, RIGHT):
        rigs[0].leg_drop(side, crouch)
        rigs[0].bend_leg(side, 0.25 * flight / 0.22, 0.5 * flight / 0.22)  # tuck in the air
        rigs[0].arm(side, flex=-0.7 * pulse(u, 0.3, 0.14) + 2.3 * pulse(u, 0.5, 0.12))
    rigs[0].lean(1.2 * crouch)
    rigs[0].root_shift[..., 1] += flight - crouch


def _clap(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    on = envelope(u, (0.05, 0.22), (0.8, 0.95))
    opening = on * (-0.2 + 0.6 * style.amplitude * (0.5 + 0.5 * style.wave(u, 4.0)))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, flex=1.25 * on, swing=opening, elbow=0.6 * on)


def _walk(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    on = envelope(u, (0.02, 0.15), (0.85, 0.98))
    step = style.wave(u, 2.0)
    for side, lift in ((LEFT, np.maximum(step, 0)), (RIGHT, np.maximum(-step, 0))):
        hip = 0.75 * on * lift * style.amplitude
        rigs[0].bend_leg(side, hip, 1.8 * hip)
        rigs[0].arm(side, flex=-0.45 * on * side * step, elbow=0.3 * on)
    rigs[0].root_shift[..., 1] += 0.02 * on * np.abs(step)


def _kick(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    chamber = envelope(u, (0.2, 0.38), (0.62, 0.85))
    extend = pulse(u, 0.5, 0.1) * style.amplitude
    rigs[0].bend_leg(RIGHT, chamber * 1.1 + 0.35 * extend, chamber * 1.6 - 1.45 * extend)
    rigs[0].lean(-0.2 * chamber)
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, abduct=0.45 * chamber, elbow=0.8 * chamber)


def _bow(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    bend = envelope(u, (0.12, 0.45), (0.58, 0.9)) * style.amplitude
    rigs[0].lean(1.0 * bend)
    rigs[0].rotate(HEAD, rot_x(0.25 * bend))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, flex=-0.85 * bend)  # the arms keep hanging while the trunk bends
    rigs[0].root_shift[..., 2] -= 0.1 * bend


def _raise_both_arms(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    up = envelope(u, (0.1, 0.4), (0.65, 0.92))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, abduct=2.7 * up * style.amplitude, elbow=0.2 * up)


# --- two-actor interactions (actor 2 stands in front of actor 1, facing it) ------------------
def _punch(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    puncher, hit = rigs
    guard = envelope(u, (0.03, 0.2), (0.82, 0.97))
    strikes = (pulse(u, 0.38, 0.09), pulse(u, 0.64, 0.09))
    strike = strikes[0] + strikes[1]
    puncher.arm(
        RIGHT,
        flex=guard * (0.9 + 0.7 * strike),
        swing=-0.25 * guard * strike,
        elbow=guard * (2.1 - 1.95 * strike * style.amplitude),
    )
    puncher.arm(LEFT, flex=0.8 * guard, swing=-0.15 * guard, elbow=2.1 * guard)
    puncher.rotate(TRUNK, rot_y(0.25 * strike * guard))  # the shoulder follows the fist
    puncher.root_shift[..., 2] += 0.08 * guard
    flinch = pulse(u, 0.42, 0.1) + pulse(u, 0.68, 0.1)
    hit.lean(-0.25 * flinch * style.amplitude)
    hit.rotate(HEAD, rot_x(-0.3 * flinch))
    hit.root_shift[..., 2] -= 0.12 * smoothstep(0.4, 0.75, u)
    for side in (LEFT, RIGHT):
        hit.arm(side, flex=0.9 * flinch, elbow=1.5 * flinch)  # covering up


def _handshake(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    reach = envelope(u, (0.08, 0.3), (0.75, 0.93))
    shake = 0.12 * reach * style.wave(u, 3.0)
    for rig in rigs:
        rig.arm(
            RIGHT,
            flex=0.85 * reach * style.amplitude + shake,
            swing=-0.3 * reach,
            elbow=0.6 * reach,
        )
        rig.root_shift[..., 2] += 0.12 * reach


def _push(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    pusher, pushed = rigs
    ready = envelope(u, (0.1, 0.3), (0.7, 0.92))
    thrust = smoothstep(0.35, 0.48, u) * (1.0 - smoothstep(0.6, 0.8, u)) * style.amplitude
    for side in (LEFT, RIGHT):
        pusher.arm(side, flex=ready * 1.0 + 0.45 * thrust, elbow=ready * 1.7 - 1.5 * thrust)
    pusher.lean(0.25 * thrust)
    pusher.root_shift[..., 2] += 0.15 * thrust
    staggered = smoothstep(0.45, 0.72, u) * style.amplitude
    pushed.root_shift[..., 2] -= 0.35 * staggered
    pushed.lean(-0.3 * pulse(u, 0.55, 0.15))
    for side in (LEFT, RIGHT):
        pushed.arm(side, abduct=0.5 * pulse(u, 0.58, 0.18), flex=0.4 * pulse(u, 0.55, 0.15))


def _hug(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    hold = envelope(u, (0.1, 0.4), (0.7, 0.95))
    for rig in rigs:
        rig.root_shift[..., 2] += 0.22 * hold
        rig.lean(0.15 * hold)
        for side in (LEFT, RIGHT):
            rig.arm(side, abduct=1.3 * hold * style.amplitude, swing=-0.9 * hold, elbow=1.0 * hold)


BASE_ACTIONS: tuple[Action, ...] = (
    Action("wave right hand", _wave(RIGHT)),
    Action("raise right arm", _raise_arm(RIGHT)),
    Action("punch other person", _punch, bodies=2, partner_distance=(0.7, 0.85)),
    Action("push other person", _push, bodies=2, partner_distance=(0.7, 0.8)),
    Action("squat down", _squat),
    Action("jump up", _jump),
    Action("clap", _clap),
    Action("handshake", _handshake, bodies=2, partner_distance=(0.85, 1.0)),
    Action("walk in place", _walk),
    Action("kick", _kick),
    Action("bow", _bow),
    Action("raise both arms", _raise_both_arms),
    Action("wave left hand", _wave(LEFT)),
    Action("hug other person", _hug, bodies=2, partner_distance=(0.85, 0.95)),
)
