import { describe, expect, it } from 'vitest';
import { defaultBundleName, FILTERS, pickOpen, pickSave, toPaths, withExtension, type Dialog } from '../src/lib/file-pick';

function stub(answer: unknown) {
  const calls: { kind: 'open' | 'save'; o: Record<string, unknown> }[] = [];
  const d: Dialog = {
    open: async (o) => {
      calls.push({ kind: 'open', o });
      return answer;
    },
    save: async (o) => {
      calls.push({ kind: 'save', o });
      return answer as string | null;
    },
  };
  return { d, calls };
}

describe('file picker', () => {
  it('a cancelled dialog gives no path', async () => {
    expect(toPaths(null)).toEqual([]);
    expect(await pickOpen('bundle', 't', stub(null).d)).toEqual([]);
    expect(await pickSave('x.hbb', 't', stub(null).d)).toBeNull();
  });

  it('a bundle is one .hbb file; QR pictures are several images', async () => {
    const one = stub('/media/usb/shift.hbb');
    expect(await pickOpen('bundle', 'Import', one.d)).toEqual(['/media/usb/shift.hbb']);
    expect(one.calls[0].o).toMatchObject({ multiple: false, filters: FILTERS.bundle });
    const many = stub(['/tmp/frame-002.png', ' /tmp/frame-001.png ']);
    expect(await pickOpen('pictures', 'QR', many.d)).toEqual(['/tmp/frame-002.png', '/tmp/frame-001.png']);
    expect(many.calls[0].o).toMatchObject({ multiple: true, filters: FILTERS.pictures });
  });

  it('a save path gets the .hbb extension when the dialog leaves it off, and only then', async () => {
    expect(await pickSave('d.hbb', 'Export', stub('/media/usb/mine').d)).toBe('/media/usb/mine.hbb');
    expect(await pickSave('d.hbb', 'Export', stub('/media/usb/mine.HBB').d)).toBe('/media/usb/mine.HBB');
    expect(withExtension('  ', 'hbb')).toBe('');
    const s = stub('/x.hbb');
    await pickSave('heartbridge-shift.hbb', 'Export', s.d);
    expect(s.calls[0].o).toMatchObject({ defaultPath: 'heartbridge-shift.hbb', filters: FILTERS.bundle });
  });

  it('the default file name says what and when', () => {
    expect(defaultBundleName(new Date(2026, 11, 1, 9, 5))).toBe('heartbridge-shift-2026-12-01-0905.hbb');
    expect(defaultBundleName(new Date(2026, 0, 31, 23, 59), 'case')).toBe('heartbridge-case-2026-01-31-2359.hbb');
  });
});
