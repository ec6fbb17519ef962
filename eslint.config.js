// Lint rules: typescript-eslint's recommended set, plus the project's layering rules
// (machines/ is pure: it imports neither impl/ nor Node; properties/ imports machines/ only).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.tmp/**', 'node_modules/**', 'diagrams/**/*.svg', 'reports/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['machines/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', '../impl/*', '../../impl/*', 'net', 'tls', 'fs'],
              message: 'machines/ is pure: no Node and no impl/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['properties/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', '../impl/*', '../../impl/*', '../test/*', '../cli/*'],
              message: 'properties/ imports machines/ only.',
            },
          ],
        },
      ],
    },
  },
);
