import { defineConfig } from 'vitest/config';
import type { Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

/**
 * The Content-Security-Policy the built UI runs under. Tauri sets its own CSP
 * from tauri.conf.json; this meta tag makes a plain-browser run of `ui/dist`
 * (vite preview, the e2e script) just as strict, so a remote font, an inline
 * script or an inline style attribute fails here first. Only in `vite build`:
 * the dev server injects inline scripts for hot reload.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  // lesson media: read from the app's hblesson: scheme into memory, played from a blob: URL
  // (WebKitGTK's media player loads only blob, data, file and http(s) URLs)
  "media-src 'self' blob:",
  "connect-src 'self' ipc: http://ipc.localhost hblesson: http://hblesson.localhost",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

function cspMeta(): Plugin {
  return {
    name: 'heartbridge-csp-meta',
    // HEARTBRIDGE_NO_CSP_META=1 leaves the policy to tauri.conf.json alone.
    apply: (_config, env) => env.command === 'build' && process.env.HEARTBRIDGE_NO_CSP_META !== '1',
    transformIndexHtml(html) {
      return html.replace(
        '<head>',
        `<head>\n    <meta http-equiv="Content-Security-Policy" content="${CSP}" />`,
      );
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [svelte(), cspMeta()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // One CSS file, no inline <style>: keeps style-src 'self' enough.
    cssCodeSplit: false,
  },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
});
