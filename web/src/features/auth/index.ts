export { RequireSession } from "./RequireSession";
export { SignInPage } from "./SignInPage";
export { useSession } from "./useSession";
