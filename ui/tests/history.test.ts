import { describe, expect, it } from 'vitest';
import { describeHistory } from '../src/lib/history';
import { translate, type MessageKey, type Params } from '../src/lib/i18n/translate';

const zh = (k: MessageKey, p?: Params) => translate('zh-CN', k, p);
const en = (k: MessageKey, p?: Params) => translate('en', k, p);

describe('describeHistory', () => {
  it('puts what heartbridge-core writes into words', () => {
    expect(describeHistory('risk → high', zh)).toBe('风险等级改为 高风险');
    expect(describeHistory('contact logged (hotline)', en)).toBe('Contact logged (Hotline)');
    expect(describeHistory('case opened (group migrant, risk low)', zh)).toBe('建立个案（流动儿童，低风险）');
    expect(describeHistory('alias changed, status → referred', en)).toBe('Alias changed; Status set to Referred');
    expect(describeHistory('follow-up done', zh)).toBe('完成了跟进事项');
  });

  it('shows anything else as it came', () => {
    expect(describeHistory('handbook imported (version 2)', zh)).toBe('handbook imported (version 2)');
    expect(describeHistory('risk → extreme', en)).toBe('risk → extreme');
  });
});
