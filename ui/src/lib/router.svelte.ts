// The current hash route, kept in step with `hashchange`.
import { parseRoute, type Route } from './route';

export const router = $state<{ route: Route }>({
  route: parseRoute(typeof location === 'undefined' ? '' : location.hash),
});

export function startRouter(onChange: (r: Route) => void): () => void {
  const update = () => {
    router.route = parseRoute(location.hash);
    onChange(router.route);
  };
  window.addEventListener('hashchange', update);
  return () => window.removeEventListener('hashchange', update);
}

export function navigate(hash: string): void {
  if (location.hash === hash) return;
  location.hash = hash;
}

/** Changes the hash without a new history entry or a route change (search-as-you-type). */
export function replaceHash(hash: string): void {
  history.replaceState(history.state, '', hash);
}
