import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// Built by scripts/build-ui.js into dist/ui, which Berth serves at ui.basePath. Relative asset
// URLs: the server puts <base href="{ui.basePath}"> into index.html, so one build fits any base.
export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [react()],
  build: {
    outDir: '../dist/ui',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:5000', '/auth': 'http://127.0.0.1:5000' } },
})
