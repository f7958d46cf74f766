// The team's members for the duty roster and the supervisor groups: the
// relay's list when it answers, else the roster this device holds (U1's
// `case_assignees`), so the lead can still plan offline.
import { api, type Role } from './api';

export interface TeamMember {
  deviceId: string;
  name: string;
  role: Role;
}

export async function loadMembers(): Promise<TeamMember[]> {
  try {
    const members = await api.teamMembers();
    return members.filter((m) => !m.revoked).map((m) => ({ deviceId: m.deviceId, name: m.name ?? '', role: m.role }));
  } catch (e) {
    const local = await api.caseAssignees().catch(() => null);
    if (local) return local.map((m) => ({ deviceId: m.deviceId, name: m.name, role: m.role }));
    throw e;
  }
}
