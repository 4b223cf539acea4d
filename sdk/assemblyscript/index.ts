// Package entry: `import { ... } from "@suborbital/suborbital"` resolves here (asc looks for
// index.ts at the package root). The SDK itself is in assembly/.
export * from "./assembly/index";
