export { ConnectButton } from "./ConnectButton";
