// The short structured screening on a case page, and the level it suggests.
//
// The mapping follows the team's own 危机风险评估与转介规程 (section 三,
// "回答与风险等级的对应参考"): when answers point at different levels the
// higher one wins, and when in doubt go higher. It only SUGGESTS: the
// volunteer decides and confirms the level.

import { RISKS, type Risk } from './api/types';

export interface ScreeningAnswers {
  /** 自杀想法: thoughts of ending their life */
  thoughts: boolean;
  /** 具体计划: a concrete plan (how, where) */
  plan: boolean;
  /** 可用手段: the means are at hand */
  means: boolean;
  /** 时间: intends to act within 48 hours (or already has) */
  timing: boolean;
  /** 既往尝试: a past attempt */
  pastAttempt: boolean;
  /** 自伤行为: current self-harm */
  selfHarm: boolean;
  /** 保护因素: someone to turn to, someone or something they hold on to */
  protective: boolean;
}

/** The six yes/no questions, in the order the handbook asks them. */
export const QUESTIONS = ['thoughts', 'plan', 'means', 'timing', 'pastAttempt', 'selfHarm'] as const;
export type Question = (typeof QUESTIONS)[number];

/** Why a level was suggested; each has a sentence in the message catalogs. */
export type Reason =
  | 'imminent'
  | 'planAndMeans'
  | 'attemptAndThoughts'
  | 'timing'
  | 'thoughts'
  | 'plan'
  | 'selfHarm'
  | 'pastAttempt'
  | 'means'
  | 'noProtective'
  | 'nothing';

export interface Assessment {
  risk: Risk;
  reasons: Reason[];
}

export function riskRank(r: Risk): number {
  return RISKS.indexOf(r);
}

export function higherRisk(a: Risk, b: Risk): Risk {
  return riskRank(a) >= riskRank(b) ? a : b;
}

/** The suggested level and the answers that raised it, most serious first. */
export function assessRisk(a: ScreeningAnswers): Assessment {
  const found: [Risk, Reason][] = [];
  // 危急: intends to act within 48 hours with a plan or the means at hand.
  if (a.timing && (a.plan || a.means)) found.push(['critical', 'imminent']);
  // 高: a concrete plan and the means; a past attempt with thoughts now; a time in mind.
  if (a.plan && a.means) found.push(['high', 'planAndMeans']);
  if (a.pastAttempt && a.thoughts) found.push(['high', 'attemptAndThoughts']);
  if (a.timing && !(a.plan || a.means)) found.push(['high', 'timing']);
  // 中: thoughts of suicide, a plan, current self-harm.
  if (a.thoughts) found.push(['medium', 'thoughts']);
  if (a.plan && !a.means) found.push(['medium', 'plan']);
  if (a.selfHarm) found.push(['medium', 'selfHarm']);
  // 低: a past attempt, now without thoughts; means at hand without a plan.
  if (a.pastAttempt && !a.thoughts) found.push(['low', 'pastAttempt']);
  if (a.means && !a.plan) found.push(['low', 'means']);

  let risk: Risk = found.reduce<Risk>((r, [level]) => higherRisk(r, level), 'none');
  const reasons = found.sort((x, y) => riskRank(y[0]) - riskRank(x[0])).map(([, why]) => why);

  // No one to turn to and nothing to hold on to: one level higher, up to 高
  // (it never makes a case 危急 on its own).
  if (!a.protective) {
    reasons.push('noProtective');
    if (risk !== 'critical') risk = RISKS[Math.min(riskRank(risk) + 1, riskRank('high'))];
  }
  if (reasons.length === 0) reasons.push('nothing');
  return { risk, reasons };
}

/** The level the screening suggests. Pure; the volunteer decides. */
export function suggestRisk(answers: ScreeningAnswers): Risk {
  return assessRisk(answers).risk;
}

/** Levels at which the handbook asks for a supervisor to confirm. */
export function needsSupervisor(r: Risk): boolean {
  return riskRank(r) >= riskRank('medium');
}
