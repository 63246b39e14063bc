;; The system whose activation is slow (TestInterruptedReconfigure).  The symbol
;; standin-slow-activation is a marker for the guix STAND-IN (not GNU
;; Guix): it makes the built system's activate script sleep 20 s.  Real Guix
;; would reject this file as an unbound variable.
(use-modules (gnu) (forum test-base))

(operating-system
  (host-name "contract-slow")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
                (bootloader grub-bootloader)
                (targets '("/dev/vda"))))
  (file-systems (cons (file-system
                        (mount-point "/")
                        (device (file-system-label "root"))
                        (type "ext4"))
                      %base-file-systems))
  (services (cons (standin-slow-activation) %base-services)))
