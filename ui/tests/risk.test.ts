import { describe, expect, it } from 'vitest';
import type { Risk } from '../src/lib/api/types';
import { assessRisk, needsSupervisor, suggestRisk, type ScreeningAnswers } from '../src/lib/risk';

const NO: ScreeningAnswers = {
  thoughts: false,
  plan: false,
  means: false,
  timing: false,
  pastAttempt: false,
  selfHarm: false,
  protective: true,
};
const a = (yes: Partial<ScreeningAnswers>): ScreeningAnswers => ({ ...NO, ...yes });

// [what the volunteer heard, answers, suggested level]
const TABLE: [string, ScreeningAnswers, Risk][] = [
  ['all no, someone to turn to', a({}), 'none'],
  ['all no, nobody to turn to', a({ protective: false }), 'low'],
  ['a past attempt, no thoughts now', a({ pastAttempt: true }), 'low'],
  ['means at hand, no plan', a({ means: true }), 'low'],
  ['suicidal thoughts', a({ thoughts: true }), 'medium'],
  ['current self-harm', a({ selfHarm: true }), 'medium'],
  ['thoughts and a plan without means', a({ thoughts: true, plan: true }), 'medium'],
  ['thoughts, no protective factors', a({ thoughts: true, protective: false }), 'high'],
  ['plan and means', a({ thoughts: true, plan: true, means: true }), 'high'],
  ['a past attempt and thoughts now', a({ thoughts: true, pastAttempt: true }), 'high'],
  ['a time in mind, no plan or means', a({ thoughts: true, timing: true }), 'high'],
  ['self-harm, thoughts and a past attempt', a({ thoughts: true, selfHarm: true, pastAttempt: true }), 'high'],
  ['within 48 h with a plan', a({ thoughts: true, plan: true, timing: true }), 'critical'],
  ['within 48 h with the means', a({ thoughts: true, means: true, timing: true }), 'critical'],
  ['everything yes', a({ thoughts: true, plan: true, means: true, timing: true, pastAttempt: true, selfHarm: true }), 'critical'],
  ['everything yes, nobody to turn to', a({ thoughts: true, plan: true, means: true, timing: true, pastAttempt: true, selfHarm: true, protective: false }), 'critical'],
  ['plan and means, nobody to turn to (capped at high)', a({ thoughts: true, plan: true, means: true, protective: false }), 'high'],
];

describe('suggestRisk', () => {
  it.each(TABLE)('%s → %s', (_, answers, expected) => {
    expect(suggestRisk(answers)).toBe(expected);
  });

  it('is pure: same answers, same level, answers untouched', () => {
    const answers = a({ thoughts: true, plan: true });
    const copy = { ...answers };
    expect(suggestRisk(answers)).toBe(suggestRisk(answers));
    expect(answers).toEqual(copy);
  });

  it('never suggests lower when one more answer turns to yes', () => {
    const keys = Object.keys(NO) as (keyof ScreeningAnswers)[];
    const rank: Risk[] = ['none', 'low', 'medium', 'high', 'critical'];
    for (let mask = 0; mask < 1 << keys.length; mask++) {
      const base = Object.fromEntries(keys.map((k, i) => [k, Boolean(mask & (1 << i))])) as unknown as ScreeningAnswers;
      for (const k of keys) {
        // "yes" raises risk for every question but protective, where "no" does
        const worse = { ...base, [k]: k === 'protective' ? false : true };
        expect(rank.indexOf(suggestRisk(worse))).toBeGreaterThanOrEqual(rank.indexOf(suggestRisk(base)));
      }
    }
  });

  it('says why, most serious reason first', () => {
    expect(assessRisk(a({ thoughts: true, plan: true, means: true, timing: true })).reasons[0]).toBe('imminent');
    expect(assessRisk(a({})).reasons).toEqual(['nothing']);
    expect(assessRisk(a({ protective: false })).reasons).toEqual(['noProtective']);
  });

  it('medium and above need a supervisor', () => {
    expect(['none', 'low', 'medium', 'high', 'critical'].map((r) => needsSupervisor(r as Risk))).toEqual([
      false,
      false,
      true,
      true,
      true,
    ]);
  });
});
