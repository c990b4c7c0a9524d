import type { ButtonHTMLAttributes } from "react";
import styles from "./Button.module.css";

type Variant = "primary" | "plain" | "danger";

export function Button({
  variant = "plain",
  className,
  ...props
}: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant }) {
  const classes = [styles.button, styles[variant], className].filter(Boolean).join(" ");
  return <button type="button" {...props} className={classes} />;
}
