import { SignJWT } from 'jose';

export const JWT_SECRET = 'test-secret-0123456789-abcdefghij';
export const API_KEY = 'test-api-key-0123456789';

export async function token(
  sub: string,
  claims: { tenant?: string; rooms?: { join?: string[]; publish?: string[] }; services?: { send?: string[]; rpc?: string[] } } = {
    rooms: { join: ['*'], publish: ['*'] },
  },
  options: { expiresIn?: string | number; secret?: string } = {},
): Promise<string> {
  let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt();
  if (options.expiresIn !== undefined) jwt = jwt.setExpirationTime(options.expiresIn);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}
