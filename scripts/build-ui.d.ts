// Types of scripts/build-ui.js for the TypeScript callers (bench/ui.ts, tests).
export function newest(dir: string): number
export function bundleSizes(dir?: string): { firstLoad: number; total: number; chunks: number; firstLoadFiles: string[] }
