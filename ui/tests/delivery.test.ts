import { describe, expect, it } from 'vitest';
import type { Connection, ShiftDelivery } from '../src/lib/api/types';
import { connectionMessage, formatBytes, receiptMessage, type Message } from '../src/lib/delivery';
import { formatTime } from '../src/lib/format';
import { translate } from '../src/lib/i18n/translate';

const TZ = 'Asia/Shanghai';
const time = (iso: string) => formatTime(iso, 'zh-CN', TZ);
const zh = (m: Message | null) => (m ? translate('zh-CN', m.key, m.params) : null);
const en = (m: Message | null) => (m ? translate('en', m.key, m.params) : null);

const ENDED: ShiftDelivery = {
  startedAt: '2026-12-01T00:10:00Z',
  endedAt: '2026-12-01T06:05:00Z',
  changes: 3,
  delivered: 0,
  atVenue: 0,
  deliveredAt: null,
};

describe('byte counts', () => {
  it('are written as a volunteer reads them', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KB');
    expect(formatBytes(9728)).toBe('9.5 KB');
    expect(formatBytes(120 * 1024)).toBe('120 KB');
    expect(formatBytes(10 * 1024 - 1)).toBe('10 KB');
    expect(formatBytes(1.2 * 1024 * 1024)).toBe('1.2 MB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3 GB');
    expect(formatBytes(-5)).toBe('0 B');
  });

  it('fill the progress line in both languages', () => {
    const params = { sent: formatBytes(2048), received: formatBytes(120 * 1024) };
    expect(translate('zh-CN', 'sync.bytes', params)).toBe('已发送 2 KB，已接收 120 KB');
    expect(translate('en', 'sync.bytes', params)).toBe('2 KB sent, 120 KB received');
  });
});

describe('the shift receipt', () => {
  it('counts the shift’s changes when all were delivered, whichever sync delivered them', () => {
    const r = receiptMessage({ ...ENDED, delivered: 3, deliveredAt: '2026-12-01T06:18:00Z' }, null, '2026-12-01T07:00:00Z', time);
    expect(r.tone).toBe('ok');
    expect(zh(r.main)).toBe('全部 3 条更改已于 14:18 送达中心中继');
    expect(en(r.main)).toBe('All 3 changes reached the central relay at 14:18');
    expect(r.detail).toBeNull();
  });

  it('never says “all 0 changes” of a shift that had changes but nothing delivered', () => {
    const r = receiptMessage(ENDED, { kind: 'network', message: '' }, '2026-12-01T06:18:00Z', time);
    expect(r.tone).toBe('warn');
    expect(zh(r.main)).toBe('尚未送达——已保存在本设备上，网络恢复后会自动发送');
    expect(zh(r.detail)).toBe('本班的 3 条更改都还在本设备上等待发送。');
    expect(en(r.detail)).toBe('All 3 changes of this shift are still waiting on this device.');
  });

  it('says how many of the shift’s changes are delivered when only some are', () => {
    const r = receiptMessage({ ...ENDED, delivered: 1 }, null, null, time);
    expect(r.tone).toBe('warn');
    expect(zh(r.detail)).toBe('本班 3 条更改中已送达 1 条，还有 2 条等待发送。');
    expect(en(r.detail)).toBe('1 of this shift’s 3 changes delivered; 2 still waiting.');
  });

  it('says the changes are on the venue relay (level 1) when a venue relay holds all the central relay lacks', () => {
    const r = receiptMessage({ ...ENDED, delivered: 1, atVenue: 2 }, null, null, time);
    expect(r.tone).toBe('venue');
    expect(zh(r.main)).toBe('已送到会场中继，还没到中心中继');
    expect(en(r.main)).toBe('On the venue relay, not yet at the central relay');
    expect(zh(r.detail)).toContain('下次同步时确认已到中心');
    // Once the central relay has them all, level 2: the ordinary receipt.
    const later = receiptMessage({ ...ENDED, delivered: 3, atVenue: 0, deliveredAt: '2026-12-01T06:30:00Z' }, null, null, time);
    expect(later.tone).toBe('ok');
    expect(zh(later.main)).toBe('全部 3 条更改已于 14:30 送达中心中继');
  });

  it('says what is still only on this device when a venue relay holds only some of it', () => {
    const r = receiptMessage({ ...ENDED, atVenue: 1 }, { kind: 'network', message: '' }, null, time);
    expect(r.tone).toBe('warn');
    expect(zh(r.main)).toBe('尚未送达——已保存在本设备上，网络恢复后会自动发送');
  });

  it('says the sync did not finish when the relay refused it', () => {
    const r = receiptMessage(ENDED, { kind: 'revoked', message: '' }, null, time);
    expect(zh(r.main)).toBe('同步没有完成，更改已保存在本设备上。');
  });

  it('has nothing to deliver for a shift without changes', () => {
    const r = receiptMessage({ ...ENDED, changes: 0 }, { kind: 'network', message: '' }, null, time);
    expect(r.tone).toBe('ok');
    expect(zh(r.main)).toBe('本班没有需要发送的更改');
  });

  it('falls back to the last sync time, or to no time at all', () => {
    const all = { ...ENDED, delivered: 3 };
    expect(zh(receiptMessage(all, null, '2026-12-01T06:20:00Z', time).main)).toBe('全部 3 条更改已于 14:20 送达中心中继');
    expect(zh(receiptMessage(all, null, null, time).main)).toBe('全部 3 条更改已送达中心中继');
    expect(en(receiptMessage({ ...all, changes: 1, delivered: 1 }, null, null, time).main)).toBe('The 1 change reached the central relay');
  });
});

describe('the connection state', () => {
  const c = (state: Connection['state'], more: Partial<Connection> = {}): Connection => ({ state, since: null, at: null, kind: null, ...more });

  it('is connected only after an attempt that reached the relay', () => {
    expect(zh(connectionMessage(c('connected', { at: '2026-12-01T06:18:00Z' }), false, time))).toBe('团队已连接');
    expect(zh(connectionMessage(c('unknown'), false, time))).toBe('等待第一次同步');
    expect(zh(connectionMessage(undefined, false, time))).toBe('等待第一次同步');
    expect(zh(connectionMessage(c('syncing'), true, time))).toBe('正在同步…');
  });

  it('says since when the relay cannot be reached, also while it retries', () => {
    const down = c('unreachable', { since: '2026-12-01T06:05:00Z', at: '2026-12-01T06:30:00Z', kind: 'network' });
    expect(zh(connectionMessage(down, false, time))).toBe('无法连接中继服务器（自 14:05 起）');
    expect(en(connectionMessage(down, false, time))).toBe('cannot reach the relay since 14:05');
    expect(zh(connectionMessage(down, true, time))).toBe('无法连接中继服务器（自 14:05 起），正在重试…');
  });

  it('says the relay refused', () => {
    expect(zh(connectionMessage(c('refused', { kind: 'revoked' }), false, time))).toBe('中继服务器拒绝了同步');
  });

  it('fills the home screen line', () => {
    const connection = zh(connectionMessage(c('connected'), false, time)) ?? '';
    expect(translate('zh-CN', 'home.team', { role: '志愿者', connection })).toBe('志愿者 · 团队已连接');
  });
});
